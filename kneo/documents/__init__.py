"""The one bounded way in for untrusted YAML and JSON: files, request bodies, Git blobs.

Python's parsers are recursive: libyaml's composer (C, no recursion check) overflows the C
stack around 50,000 nested levels and kills the process; ``json`` raises ``RecursionError``
near 1,000; an integer of more than 4,300 digits raises ``ValueError``; a YAML alias bomb
("billion laughs") expands to gigabytes downstream. So every document is measured *before*
the recursive parser sees it, by code that never recurses:

* YAML: a pass over libyaml's event stream (a flat sequence: start/end of collections,
  scalars, aliases) counts depth, nodes with every alias expanded, aliases, and plain
  numbers' digits;
* JSON: a byte-level scan with strings blanked out counts bracket depth, values and the
  longest run of digits; ``NaN``/``Infinity`` are refused (not JSON, not canonicalizable).

A breach raises :class:`DocumentError` naming the source and the limit (``E_DOCUMENT_TOO_LARGE``,
``E_DOCUMENT_TOO_DEEP``, ``E_DOCUMENT_TOO_COMPLEX``, ``E_NUMBER_TOO_LONG``); a file that is not
a regular file (a device, a FIFO, a symlink to ``/dev/zero``) is ``E_NOT_A_FILE`` and is
never read.

**One reading.** A mapping that holds one key twice (``required_signatures: 2`` and, further
down, ``required_signatures: 1``) is ``E_DUPLICATE_KEY`` naming both lines and the field:
parsers and people disagree on which one counts (PyYAML and ``json`` take the last, a
reviewer reads the first). Keys are compared as the document reads them (``"a"`` and ``a``,
``0x10`` and ``16``, ``yes`` and ``true`` are one key each); a YAML merge (``<<: *base``)
is the one way to override a key, and two merge keys in one mapping are a duplicate too.

Pure but for :func:`read_file`, which reads what it is given. The limits, the refusals and
the file reader are :mod:`kneo.documents.limits`; JSON is
:mod:`kneo.documents.json_documents`, YAML :mod:`kneo.documents.yaml_documents`; the names
below are the one way in.
"""

from __future__ import annotations

from kneo.documents.json_documents import check_json, load_json_file, parse_json
from kneo.documents.limits import (
    LIMITS,
    DocumentError,
    DocumentLimits,
    DocumentTooLarge,
    read_file,
    read_text,
)
from kneo.documents.yaml_documents import check_yaml, load_yaml_file, parse_yaml

__all__ = [
    "LIMITS",
    "DocumentError",
    "DocumentLimits",
    "DocumentTooLarge",
    "check_json",
    "check_yaml",
    "load_json_file",
    "load_yaml_file",
    "parse_json",
    "parse_yaml",
    "read_file",
    "read_text",
]
