"""Runs and their checkpoints: the rows of a step boundary, a run's compare-and-set advance
(a step or its outcome), checkpoint payloads (encoding, patches on the previous checkpoint, the
chains that fold them back onto a keyframe) and the filters of a runs listing.

No re-exports: import from the module.
"""
