"""Operating the database: retention pruning and SQLite backup and restore, ``kneo db
doctor``'s checks, and the shared state ``/metrics`` reads at scrape time.

No re-exports: import from the module.
"""
