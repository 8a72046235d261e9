"""Fixtures the door tests share with the service's tests."""

from __future__ import annotations

from tests.service.svc_helpers import request_log  # noqa: F401 (fixture)
