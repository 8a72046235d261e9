"""The reviewer console: web pages under ``/ui`` where people see what waits for them and
decide (an edge, beside the HTTP API).

Server-rendered (Jinja2 templates, one CSS file, vendored htmx for self-refreshing lists)
and usable without JavaScript. No logic of its own beyond forms: pages read through the
platform calls the API routes make, decisions go through ``PlatformManager.resume`` like
``POST /v1/human-tasks/{id}/resume``, and each page's scopes are read from the API routes it
mirrors (:mod:`kneo.console.auth`). Imports the platform and the service's auth, never the
store's internals or the engine.
"""

from kneo.console.app import create_console

__all__ = ["create_console"]
