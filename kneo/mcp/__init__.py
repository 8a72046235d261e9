"""The MCP client adapter (adapters layer): the sessions that serve a run's ``mcp.imports``
tools (:mod:`kneo.mcp.client`), injected into the engine by the platform.

Kneo served over MCP (``kneo mcp serve``) is an edge beside the HTTP API it calls,
:mod:`kneo.service.mcp`; the two share only the SDK.
"""
