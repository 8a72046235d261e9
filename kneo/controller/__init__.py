"""The GitOps controller: reconcile a Git repository of signed bundles into the registry.

Reconcile layer. Holds the pure core (``model``; ``planner``: ``plan(desired, observed) ->
actions``, with ``promotion_gates``, ``plan_actions`` and the status ``conditions``; no I/O)
and the parts that touch the world through injected seams: ``source`` (Git via GitPython),
``loader`` (desired state at one commit, from ``bundle_paths``, ``environment_files`` and
each file's ``verdicts``, cached per blob), ``ratchet`` (which policy judges each
environment: the one in force, ``policy_record``, until a loosening is authorized),
``observe`` (the registry read for a plan), ``apply`` (store writes, one transaction per
bundle revision), ``controller`` (one pass's sub-steps in order, with ``pass_scope``,
``policy_pass`` and ``status``), ``leadership`` (the leader lock), ``projects`` (every
project's source under one leader), ``watch`` (poll, watchdog, webhook trigger) and
``runtime`` (which revision a run may use). Imports ``kneo.bundle``, ``kneo.policy``,
``kneo.spec`` and ``kneo.store``; never FastAPI, Typer or httpx (the service and CLI call
into it, not the reverse).
"""
