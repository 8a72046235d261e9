"""Test hook for the ``hitl_*`` examples: count calls in ``$KNEO_HITL_COUNTER`` when set.

Kept out of :mod:`examples.hitl_functions` so the example steps themselves import nothing
privileged; one ``write()`` on an ``O_APPEND`` descriptor keeps lines from many processes
whole.
"""

from __future__ import annotations

import os


def count(name: str) -> None:
    path = os.environ.get("KNEO_HITL_COUNTER")
    if not path:
        return
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        os.write(fd, f"{name}\n".encode())
    finally:
        os.close(fd)
