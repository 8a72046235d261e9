"""MCP both ways (adapter and edge layer): the client that serves ``mcp.imports`` tools to a
run (:mod:`kneo.mcp.client`, injected into the engine by the platform) and ``kneo mcp
serve``, the server that exposes Kneo's human tasks, runs and registry to an assistant
(:mod:`kneo.mcp.server`). Only this package imports the ``mcp`` SDK.
"""
