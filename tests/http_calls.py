"""The suite's one-off HTTP calls, with one TLS context per test process.

``httpx2.get(url)`` builds a client for the call, and with it a TLS context that loads the CA
bundle: about 40 ms of CPU on every call, even to a plain ``http://`` server. The suite polls
live servers until they answer and drives whole shapes request by request, thousands of
calls; these functions are ``httpx2``'s own, given one context built once.
"""

from __future__ import annotations

import functools
import ssl
from typing import Any

import httpx2

__all__ = ["get", "post", "request"]


@functools.cache
def _tls() -> ssl.SSLContext:
    return httpx2.create_ssl_context()


def request(method: str, url: str, **options: Any) -> httpx2.Response:
    """``httpx2.request`` with the process's TLS context (unless ``verify`` is given)."""
    options.setdefault("verify", _tls())
    return httpx2.request(method, url, **options)


def get(url: str, **options: Any) -> httpx2.Response:
    return request("GET", url, **options)


def post(url: str, **options: Any) -> httpx2.Response:
    return request("POST", url, **options)
