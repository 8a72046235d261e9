"""Trust layer, policy half: environment policy models and their evaluation over diagnostics.

Holds :mod:`kneo.policy.enforcement` (``PolicyEnforcement`` gates -> ``E_POLICY_*``
diagnostics) and :mod:`kneo.policy.environment` (per-environment policy files, stricter-wins
merge). Pure: no I/O beyond reading the files it is given; never imports SQLAlchemy,
FastAPI, Typer or httpx.
"""
