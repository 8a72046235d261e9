"""The HTTP service (edge layer): FastAPI app, routers, auth, limits, request logging.

Routes are thin: parse a strict request model, call the platform manager or the store,
shape the response. Nothing below this package imports it.
"""

from kneo.service.app import create_app
from kneo.service.dependencies import get_platform_manager, set_platform_manager

__all__ = ["create_app", "get_platform_manager", "set_platform_manager"]
