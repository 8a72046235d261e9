"""The durable queue worker (edge layer): ``kneo worker`` claims queued runs with leases and
executes them, of every project of its database: each record through its project's manager
(:class:`kneo.platform.directory.ProjectDirectory`), with its sweeps and notifications.

The loop itself is :class:`kneo.platform.worker.Worker`, the one every way of executing
queued runs uses (this process, the service's in-process worker and
``PlatformManager.start_worker``), so all of them back off, retry and give up alike.

A worker owns a record only while its lease is live: it renews the lease while the run
executes, completes or fails the record afterwards, and gives it back on a graceful stop if
it never started. A worker that dies simply stops renewing; its lease expires and another
worker claims the record again (``attempts`` counts claims). Execution goes through
``PlatformManager.execute_run``, whose compare-and-set on the run makes a second execution
of the same step impossible even when two workers briefly believe they own a record.
"""

from kneo.platform.worker import Worker

__all__ = ["Worker"]
