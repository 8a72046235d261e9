"""How statements reach the database: the write path's statement builders and their cache
(one per store's dialect), the executor that runs a transaction's statements on the wire, what
differs between SQLite and PostgreSQL (the dialects and PostgreSQL's connection hooks), the
database URL, and driver failures translated into Kneo errors.

No re-exports: import from the module.
"""
