"""Execution: workflows, steps, the agent loop, providers, tool guard, human pauses.

Pure with respect to storage: the engine reads and writes durable state only through the
injected journal interface, and time through an injected clock. It must not import
SQLAlchemy, FastAPI, Typer or httpx (providers import their SDK lazily).
"""
