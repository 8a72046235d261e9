"""The ``kneo`` command line (edge layer).

Commands are thin: they parse flags, call one client interface (local in-process platform or
the HTTP service) and render Rich tables or ``--json``. Heavy imports (FastAPI, SQLAlchemy,
provider SDKs) happen inside the commands that need them, so ``kneo --help`` and
``kneo spec lint`` start fast; a local command never imports the HTTP client (see
:func:`kneo.cli.client.get_client`), and start-up runs with a relaxed garbage collector
(:mod:`kneo.startup`).
"""
