"""Project code files in the store (``store.code``, ``code_files``), on SQLite and PostgreSQL:
put by sha256, got back byte for byte, written once however often they are put (two writers
of one file both succeed), and shared by every project's view (a file is reachable only by its
digest)."""

from __future__ import annotations

import hashlib
from concurrent.futures import ThreadPoolExecutor

from kneo.store import Store
from kneo.store import code as code_module


def _file(text: str) -> tuple[str, bytes]:
    data = text.encode()
    return hashlib.sha256(data).hexdigest(), data


def test_files_are_put_once_and_got_back_by_digest(store: Store) -> None:
    one, two = _file("def a(x):\n    return x\n"), _file("def b(x):\n    return x\n")
    assert store.code.missing([one[0], two[0]]) == [one[0], two[0]]
    with ThreadPoolExecutor(4) as pool:  # concurrent writers of the same files
        list(pool.map(lambda _: store.code.put(dict([one, two])), range(4)))
    assert store.code.missing([one[0], two[0]]) == []
    assert store.code.get([one[0], two[0], "0" * 64]) == dict([one, two])
    code_module._HELD.clear()  # another process: it does not know them stored
    store.code.put(dict([one]))  # written again: insert-if-absent, no error
    assert store.code.get([one[0]]) == dict([one])
    assert store.code.get([]) == {}
    code_module._HELD.clear()
    assert store.code.get([two[0]]) == {two[0]: two[1]} and store.code.get(["0" * 64]) == {}
    assert store.code.missing([two[0]]) == []  # read back: known stored
