"""A full pass's signature checks in worker processes, beside this one's spec checks.

A cold (or otherwise full) pass verifies every bundle file: parsing it and checking its
Ed25519 signatures is, after the spec checks, most of the pass's CPU, and one Python
process uses one core. Verifying is a pure function of the file's bytes, the trusted
keyring, its environment's signature rules and the pass's time, so worker processes do it
while this one parses the files and checks their specs in order; the loader uses a
worker's verdict exactly as it would its own, so the outcome does not depend on how the
work was split. Whatever a worker cannot answer (an unexpected error in one file, a pool
that cannot start or breaks) is verified here instead, as without a pool.

The pool is started (spawned, never forked: the controller runs beside other threads and
open database connections) only for a pass with at least :data:`PARALLEL_FROM` files to
verify, has at most :func:`default_processes` workers, and is shut down (every worker
joined) before the pass's load returns: no worker outlives it (only ``multiprocessing``'s
idle resource tracker stays, one per process, and exits with it), and an incremental or
no-op pass never starts one.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Collection
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from datetime import datetime

from kneo.bundle.keys import Keyring
from kneo.logs import get_logger

log = get_logger("kneo.controller")

#: Fewer files to verify than this and a pass verifies them itself: starting a worker costs
#: about 0.3 s of CPU (an interpreter and the bundle modules), verifying one file ~0.2 ms.
PARALLEL_FROM = 2000
#: Files per task: small enough that the first verdicts come back while the rest are worked
#: on and the workers share the load evenly, large enough that sending one costs little.
CHUNK = 250
#: Never more workers than this, however many cores (the pass's own process checks specs).
MAX_PROCESSES = 4


def default_processes() -> int:
    """Workers for a full pass: one per core up to :data:`MAX_PROCESSES`; none on one core,
    where a worker would only take turns with the pass's own process."""
    cores = os.cpu_count() or 1
    return 0 if cores < 2 else min(cores, MAX_PROCESSES)


@dataclass(frozen=True)
class Verdict:
    """A file's verification: the key ids that signed it and counted, or the code and
    message of the :class:`~kneo.errors.BundleError` it failed with."""

    signers: tuple[str, ...] = ()
    code: str | None = None
    message: str = ""


#: What one file's verification needs besides the keyring and time: its bytes, the
#: environment's ``required_signatures`` and ``accepted_key_ids``.
Item = tuple[bytes, int, tuple[str, ...] | None]

_keyring: Keyring | None = None  # a worker's, set once when it starts


def _start_worker(keyring: Keyring) -> None:
    global _keyring
    _keyring = keyring


def _verify_chunk(now: datetime, items: list[Item]) -> list[Verdict | None]:
    """In a worker: each file parsed and verified; ``None`` where anything but a
    :class:`~kneo.errors.BundleError` happened (the pass verifies that file itself, and
    reports what it does there as it would without a pool)."""
    from kneo.bundle.format import parse_bundle
    from kneo.bundle.verify import verify_parsed
    from kneo.errors import BundleError

    assert _keyring is not None
    verdicts: list[Verdict | None] = []
    for raw, required, accepted in items:
        try:
            model, document = parse_bundle(raw)
            verified = verify_parsed(
                model,
                document,
                _keyring,
                now=now,
                required_signatures=required,
                accepted_key_ids=accepted,
            )
            verdicts.append(Verdict(verified.signer_key_ids))
        except BundleError as exc:
            verdicts.append(Verdict(code=exc.code, message=exc.message))
        except Exception:  # this file's fault, reported where the pass verifies it again
            verdicts.append(None)
    return verdicts


class Verifications:
    """The verdicts of one pass's files, computed by worker processes as they are added.

    :meth:`add` queues a file (sent in chunks of :data:`CHUNK`), :meth:`get` waits for its
    verdict (``None``: verify it here), :meth:`close` stops the pool; use it as a context
    manager. Not thread-safe: one pass uses it from one thread."""

    def __init__(self, keyring: Keyring, now: datetime, processes: int) -> None:
        self._now = now
        self._pool: ProcessPoolExecutor | None = ProcessPoolExecutor(
            max_workers=processes,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_start_worker,
            initargs=(keyring,),
        )
        self._keys: list[tuple[str, str]] = []
        self._items: list[Item] = []
        #: file key -> (its chunk's future, its index in the chunk)
        self._pending: dict[tuple[str, str], tuple[Future[list[Verdict | None]], int]] = {}
        #: verdicts a worker gave (the others were verified by the caller)
        self.answered = 0

    def __enter__(self) -> Verifications:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def add(
        self,
        key: tuple[str, str],
        raw: bytes,
        required_signatures: int,
        accepted_key_ids: Collection[str] | None,
    ) -> None:
        """Queue the file ``key`` (its blob and environment) for a worker."""
        if self._pool is None or key in self._pending or key in self._keys:
            return
        accepted = None if accepted_key_ids is None else tuple(accepted_key_ids)
        self._keys.append(key)
        self._items.append((raw, required_signatures, accepted))
        if len(self._items) >= CHUNK:
            self.flush()

    def flush(self) -> None:
        """Send the files queued so far."""
        keys, items = self._keys, self._items
        self._keys, self._items = [], []
        if self._pool is None or not items:
            return
        try:
            future = self._pool.submit(_verify_chunk, self._now, items)
        except Exception as exc:  # the pool is broken or cannot start: verify here
            self._fail(exc)
            return
        for index, key in enumerate(keys):
            self._pending[key] = (future, index)

    def get(self, key: tuple[str, str]) -> Verdict | None:
        """The verdict for ``key``, waiting for its worker; ``None`` when no worker has one
        (never queued, or the worker failed): the caller verifies the file itself."""
        if key in self._keys:
            self.flush()
        found = self._pending.pop(key, None)
        if found is None:
            return None
        future, index = found
        try:
            verdict = future.result()[index]
        except Exception as exc:  # a worker died or the pool broke: verify here
            self._fail(exc)
            return None
        self.answered += verdict is not None
        return verdict

    def close(self) -> None:
        """Stop the pool: queued work is cancelled and every worker joined."""
        pool, self._pool = self._pool, None
        self._pending.clear()
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)

    def _fail(self, exc: BaseException) -> None:
        if self._pool is not None:
            log.warning("verifying in worker processes failed, verifying here: %s", exc)
        self.close()
