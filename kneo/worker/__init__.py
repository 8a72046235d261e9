"""The durable queue worker (edge layer): claims queued runs with leases and executes them.

A worker owns a record only while its lease is live: it renews the lease while the run
executes, completes or fails the record afterwards, and gives it back on a graceful stop if
it never started. A worker that dies simply stops renewing; its lease expires and another
worker claims the record again (``attempts`` counts claims). Execution goes through
``PlatformManager.execute_run``, whose compare-and-set on the run makes a second execution
of the same step impossible even when two workers briefly believe they own a record.
"""

from kneo.worker.worker import Worker

__all__ = ["Worker"]
