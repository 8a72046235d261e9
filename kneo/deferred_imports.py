"""A dependency's costly import-time work, deferred in Kneo's own processes until it is used.

jsonschema imports ``rfc3987_syntax`` whenever it is installed (jsonschema's ``format-nongpl``
extra; the SBOM tools of Kneo's ``dev`` extra pull it in, and so do many data stacks). That
package compiles an Earley grammar with lark while it is imported: 1.0 to 2.2 CPU-s, two to
three times the rest of a ``kneo human resume``, paid by every process that validates a JSON
Schema (a human answer, a tool's arguments, an MCP session) although only a format checker
asked about an ``iri`` ever uses it. Kneo validates without one.

:func:`defer_costly_imports` (called by the console entry point, never on a library import)
puts a stand-in under that module's name before jsonschema is imported. jsonschema binds the
stand-in's ``is_valid_syntax``; its first call, or any other attribute, imports the real
module and hands over to it, so a format checker still gets the real answer.
``importlib.util.LazyLoader`` would not do: jsonschema reads the function off the module as it
imports it, and that read is a lazy module's first use.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import threading
import types
from typing import Any

__all__ = ["defer_costly_imports"]

_IRI_SYNTAX = "rfc3987_syntax"
_lock = threading.Lock()


class _DeferredModule(types.ModuleType):
    """Stands in for a module until first use, then imports it and forwards every lookup."""

    def _load(self) -> types.ModuleType:
        with _lock:
            if sys.modules.get(self.__name__) is self:
                del sys.modules[self.__name__]
                try:
                    importlib.import_module(self.__name__)
                except BaseException:
                    sys.modules[self.__name__] = self
                    raise
        return sys.modules[self.__name__]

    def is_valid_syntax(self, term: str, value: str) -> bool:
        """What jsonschema imports by name (bound at its import, so defined, not forwarded)."""
        return bool(self._load().is_valid_syntax(term, value))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._load(), name)


def defer_costly_imports() -> None:
    """Put the stand-in in place unless jsonschema or the module is already imported, or the
    module is not installed (then jsonschema would not import it either)."""
    if _IRI_SYNTAX in sys.modules or "jsonschema" in sys.modules:
        return
    spec = importlib.util.find_spec(_IRI_SYNTAX)
    if spec is None:
        return
    stand_in = _DeferredModule(_IRI_SYNTAX)
    # a package's stand-in is one too: ``from rfc3987_syntax import is_valid_syntax`` asks for
    # ``__path__`` first, and asking ``__getattr__`` would import the real module right there
    stand_in.__path__ = list(spec.submodule_search_locations or [])
    # and so is its file: tools that walk ``sys.modules`` reading ``__file__`` (hypothesis
    # gathering a test's constants, ``inspect``) would otherwise import the real module
    stand_in.__file__ = spec.origin
    sys.modules[_IRI_SYNTAX] = stand_in
