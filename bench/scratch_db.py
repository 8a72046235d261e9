"""A scratch PostgreSQL database for the benches.

Not a bench itself: they import it as ``bench.scratch_db`` (the checkout's root on
``sys.path``).
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def scratch_database(server: str, prefix: str) -> Iterator[str]:
    """A new, empty database ``<prefix>_<8 hex>`` on the PostgreSQL server ``server`` names:
    yields its URL and drops it at exit (``WITH (FORCE)``: connections left open to it are
    terminated)."""
    import sqlalchemy as sa

    name = f"{prefix}_{secrets.token_hex(4)}"
    admin = sa.create_engine(server, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
        try:
            yield sa.make_url(server).set(database=name).render_as_string(hide_password=False)
        finally:
            with admin.connect() as conn:
                conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        admin.dispose()
