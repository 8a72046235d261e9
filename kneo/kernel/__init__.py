"""The trust kernel: the one module through which a spec, a suite, a bundle or a caller
reaches the host.

A spec is code, and so are an eval suite, a signed bundle and an inline spec sent to the API
by a key that may start runs. Each reaches the host only through a door of this module, and
each door asks the grant it is handed (:class:`~kneo.policy.access.HostAccess`, what the
project declared, narrowed by the environment) before it acts — Deno's permissions container,
one descriptor per door:

====================  ===================================  ===================================
door                  here                                 refused as
====================  ===================================  ===================================
a callable            :func:`resolve_callable` (a spec's   ``E_FUNCTION_NOT_ALLOWED``: the
                      ``module:function``),                module is not the project's, or
                      :func:`resolve_attribute` (an        the name is not a function
                      operator's ``module:name``)          *defined in* it (no traversal)
a secret              :func:`secret`                       ``E_SECRET_UNDECLARED`` (the
                                                           grant, :class:`SecretGrant`)
a network destination :func:`http_client`,                 ``E_DESTINATION_NOT_ALLOWED``,
                      :func:`async_http_client`,           ``E_SECRET_NOT_BOUND`` (the grant),
                      :func:`async_httpx_client`,
                      :func:`smtp_connection`              at every hop, redirects included;
                                                           a destination a *caller* names (an
                                                           A2A push URL) only on the operator's
                                                           :class:`AllowList`
a process             :func:`start_process`,               ``E_PROCESS_UNDECLARED`` (the
                      :func:`run_process`,                 grant, :class:`ProcessGrant`)
                      :func:`stdio_server`
a project file        :func:`read_project_file` (a         ``E_FILE_NOT_ALLOWED``: not inside
                      project skill's                      the project root (absolute, ``..``,
                      ``instructions_file``)               or a symlink out of it)
an identity claim     :func:`kneo.people.proven_claim`,    no ``user:`` match: the person is
                      :func:`kneo.people.names_of`         named by ``sub`` and their groups
====================  ===================================  ===================================

An environment's name is a door too (it picks the rules and the grant): the one answer to
which environments a project declares and which one a run is in is
:func:`kneo.spec.project.judge_environment`, in the contract layer because the spec loader
asks it before reading an overlay; admission asks it for every run
(``RunAdmission.environment``), refusing ``E_UNKNOWN_ENV``.

Each door takes its grant as a parameter and asks it itself: a run's
(:class:`~kneo.policy.access.HostAccess` or one call's :class:`~kneo.policy.access.Reach`), or
:class:`Operator`, the grant of what the operator configured (the ``git`` the CLI runs, the
tool bridge's own interpreter). The file door's grant is the project root it is given: it is
asked while the project config, of which the grant is made, is read.

``tests/core/test_trust_kernel.py`` resolves every name (aliases, ``from`` imports, ``getattr``,
``sys.modules``, the builtins) and fails on a door (an import by name, code from data, a
process, the network, an environment read of a non-``KNEO_*`` name) used anywhere else, but
for the few exceptions it lists with a reason.

One module per door (:mod:`.callables`, :mod:`.host`, :mod:`.files`, :mod:`.network`).
Pure but for the doors themselves: importing a module the grant allows, reading the
environment snapshot :class:`~kneo.settings.Settings` took, starting a process, building an
HTTP client. It imports no HTTP library until a client is asked for.
"""

from __future__ import annotations

from kneo.kernel.callables import (
    UNSAFE_MODULES,
    CallableGrant,
    ref_of,
    resolve_attribute,
    resolve_callable,
    split_ref,
)
from kneo.kernel.files import read_project_file
from kneo.kernel.host import (
    Operator,
    ProcessGrant,
    SecretGrant,
    run_process,
    secret,
    start_process,
    stdio_server,
)
from kneo.kernel.network import (
    AllowList,
    NetworkGrant,
    Origins,
    async_http_client,
    async_httpx_client,
    http_client,
    smtp_connection,
)

__all__ = [
    "UNSAFE_MODULES",
    "AllowList",
    "CallableGrant",
    "NetworkGrant",
    "Operator",
    "Origins",
    "ProcessGrant",
    "SecretGrant",
    "async_http_client",
    "async_httpx_client",
    "http_client",
    "read_project_file",
    "ref_of",
    "resolve_attribute",
    "resolve_callable",
    "run_process",
    "secret",
    "smtp_connection",
    "split_ref",
    "start_process",
    "stdio_server",
]
