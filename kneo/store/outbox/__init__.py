"""What is delivered later: the notifications outbox (routing, leased claims, outcomes, retry)
and A2A push-notification configs with the outbox rows their pushes are.

No re-exports: import from the module.
"""
