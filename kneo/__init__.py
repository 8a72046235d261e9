"""Kneo: AI agent workflows under GitOps control with durable human approval.

Layers (imports point downward only):
contract ``kneo.spec`` -> trust ``kneo.bundle``/``kneo.policy`` -> execution ``kneo.engine``
-> persistence ``kneo.store`` -> application ``kneo.platform`` -> reconcile ``kneo.controller``
-> edges ``kneo.service``/``kneo.cli``/``kneo.worker``.
"""

__version__ = "0.1.0"
