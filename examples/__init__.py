"""Example specs, overlays and helper functions (importable as ``examples.*`` from the repo root)."""
