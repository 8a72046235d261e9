"""Trust layer, policy half: environment policy models and their evaluation over diagnostics.

Holds :mod:`kneo.policy.enforcement` (``PolicyEnforcement`` gates -> ``E_POLICY_*``
diagnostics), :mod:`kneo.policy.environment` (per-environment policy files, stricter-wins
merge) and :mod:`kneo.policy.check` (the one spec check CI, the API and the controller
run: the contract's diagnostics, then the environment's policy, then the governance report). Pure: no I/O beyond reading the files it is given; never imports SQLAlchemy,
FastAPI, Typer or httpx.
"""
