"""The GitOps registry: its reads (revisions, conditions, suspensions, pins, blocked digests,
controller status, promotion approvals), a transaction's writes to it, and the statements both
use.

No re-exports: import from the module.
"""
