# examples/serve_lookup.py
# ruff: noqa: I001 -- the imports stay in the order the tutorial prints them
"""Custom-tool tutorial, step 6 (your own server): serve the platform with ``lookup_user``.

python -m examples.serve_lookup
"""

import uvicorn
from kneo.service.app import create_app
from kneo.service.dependencies import set_platform_manager

from examples.my_factory import build_platform

if __name__ == "__main__":
    set_platform_manager(build_platform())
    uvicorn.run(create_app(), host="127.0.0.1", port=8000)
