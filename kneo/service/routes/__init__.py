"""One router per route group; :func:`kneo.service.app.create_app` mounts each under ``/v1``
and again, hidden from OpenAPI, at the unversioned legacy path."""
