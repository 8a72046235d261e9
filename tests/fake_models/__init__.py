"""Local servers speaking the model providers' wire formats, for the official SDKs to talk to.

See :mod:`tests.fake_models.server`.
"""
