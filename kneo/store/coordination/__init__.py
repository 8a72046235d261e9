"""Coordination between processes, each primitive committing on its own: the run queue with
leases, named locks, idempotency keys and accepted interaction callbacks, and the reconcile
requests API replicas leave for the leading controller.

No re-exports: import from the module.
"""
