"""The GitOps controller: reconcile a Git repository of signed bundles into the registry.

Reconcile layer. Holds the pure core (``model``, ``planner``: ``plan(desired, observed) ->
actions`` and status conditions, no I/O) and the parts that touch the world through
injected seams: ``source`` (Git via GitPython), ``loader`` (desired state at one commit,
cached per blob), ``ratchet`` (which policy judges each environment: the one in force
until a loosening is authorized), ``apply`` (store writes, one transaction per bundle
revision), ``leadership`` (the leader lock), ``projects`` (every project's source under one
leader), ``watch`` (poll, watchdog, webhook trigger) and ``runtime`` (which revision a run
may use). Imports ``kneo.bundle``, ``kneo.policy``, ``kneo.spec`` and ``kneo.store``;
never FastAPI, Typer or httpx (the service and CLI call into it, not the reverse).
"""
