"""Projects: ``projects`` and the ``project_id`` of every row a project owns.

``projects`` holds the unit of tenancy; row 1 is ``default``, the project every existing row
belongs to (on PostgreSQL the id sequence continues at 2). The tables that own a project's
rows gain ``project_id INTEGER NOT NULL DEFAULT 1`` in place (``ADD COLUMN``: no rewrite on
SQLite, none on PostgreSQL 11 or newer, and on SQLite an existing row reads the default
without storing it); their listing indexes are rebuilt with the project in front, so a
project's page walks its own entries. That rebuild takes time in proportion to the rows of
``runs``, ``continuations``, ``continuation_requests`` and ``audit_events``.

The small tables whose key gains the project (idempotency records, project metadata, the
registry's) are rebuilt on SQLite (create, copy, drop, rename, as 0022 did) and re-keyed in
place on PostgreSQL; ``registry_change_counter`` keeps one row per project (its ``id``
becomes ``project_id``). ``console_sessions`` gains a nullable ``project_id``: the project
the person last viewed. The search terms (``run_terms``, ``continuation_terms``) get no
column: another project's terms carry its prefix (``kneo.store.tasks.search.scoped_term``),
so on PostgreSQL ``term`` widens to ``varchar(48)`` (a catalog change) and SQLite, which
enforces no length, is left as it is. The downgrade refuses while a project other than
``default`` exists.

Revision ID: 0026
Revises: 0025
Create Date: 2026-12-01
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from alembic import op

from kneo.store.migrate import drop_columns

revision = "0026"
down_revision = "0025"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)
ONE = sa.text("1")
_SETTLED = "status <> 'running'"

#: (index, columns, partial ``WHERE``) before and after, by table, for the tables that get
#: ``project_id`` in place
_Index = tuple[str, list[str], str | None]
_INDEXES: dict[str, tuple[list[_Index], list[_Index]]] = {
    "runs": (
        [
            ("ix_runs_status_created_at_run_id", ["status", "created_at", "run_id"], None),
            ("ix_runs_created_at_run_id", ["created_at", "run_id"], None),
            ("ix_runs_updated_at_run_id", ["updated_at", "run_id"], _SETTLED),
            ("ix_runs_session_id_created_at_run_id", ["session_id", "created_at", "run_id"], "session_id IS NOT NULL"),
            ("ix_runs_workflow_name_created_at_run_id", ["workflow_name", "created_at", "run_id"], None),
            ("ix_runs_workflow_kind_created_at_run_id", ["workflow_kind", "created_at", "run_id"], None),
            ("ix_runs_failed_created_at_run_id", ["created_at", "run_id"], "error IS NOT NULL"),
        ],
        [
            ("ix_runs_project_id_status_created_at_run_id", ["project_id", "status", "created_at", "run_id"], None),
            ("ix_runs_project_id_created_at_run_id", ["project_id", "created_at", "run_id"], None),
            ("ix_runs_project_id_updated_at_run_id", ["project_id", "updated_at", "run_id"], _SETTLED),
            ("ix_runs_project_id_session_id_created_at_run_id", ["project_id", "session_id", "created_at", "run_id"], "session_id IS NOT NULL"),
            ("ix_runs_project_id_workflow_name_created_at_run_id", ["project_id", "workflow_name", "created_at", "run_id"], None),
            ("ix_runs_project_id_workflow_kind_created_at_run_id", ["project_id", "workflow_kind", "created_at", "run_id"], None),
            ("ix_runs_failed_project_id_created_at_run_id", ["project_id", "created_at", "run_id"], "error IS NOT NULL"),
        ],
    ),
    "continuations": (
        [
            ("ix_continuations_status_created_at_continuation_id", ["status", "created_at", "continuation_id"], None),
            ("ix_continuations_status_workflow_kind_created_at", ["status", "workflow_kind", "created_at", "continuation_id"], None),
            ("ix_continuations_status_environment_created_at", ["status", "environment", "created_at", "continuation_id"], None),
            ("ix_continuations_status_workflow_name_created_at", ["status", "workflow_name", "created_at", "continuation_id"], None),
            ("ix_continuations_status_expires_at_created_at_continuation_id", ["status", "expires_at", "created_at", "continuation_id"], None),
        ],
        [
            ("ix_continuations_project_id_status_created_at_continuation_id", ["project_id", "status", "created_at", "continuation_id"], None),
            ("ix_continuations_project_id_status_workflow_kind_created_at", ["project_id", "status", "workflow_kind", "created_at", "continuation_id"], None),
            ("ix_continuations_project_id_status_environment_created_at", ["project_id", "status", "environment", "created_at", "continuation_id"], None),
            ("ix_continuations_project_id_status_workflow_name_created_at", ["project_id", "status", "workflow_name", "created_at", "continuation_id"], None),
            ("ix_continuations_project_id_status_expires_at_created_at", ["project_id", "status", "expires_at", "created_at", "continuation_id"], None),
        ],
    ),
    "continuation_requests": (
        [("ix_continuation_requests_status_assignee", ["status", "assignee"], None)],
        [("ix_continuation_requests_project_id_status_assignee", ["project_id", "status", "assignee"], None)],
    ),
    "audit_events": (
        [("ix_audit_events_event_type_id", ["event_type", "id"], None)],
        [
            ("ix_audit_events_project_id_id", ["project_id", "id"], None),
            ("ix_audit_events_project_id_event_type_id", ["project_id", "event_type", "id"], None),
        ],
    ),
    "queue": ([], []),
    "controller_requests": (
        [("ix_controller_requests_name_status", ["name", "status"], None)],
        [("ix_controller_requests_status_project_id_name", ["status", "project_id", "name"], None)],
    ),
    "notification_events": ([], []),
    "notifications": ([], []),
    "a2a_push_configs": ([], []),
}  # fmt: skip

#: The tables whose key gains the project: their key (after ``project_id``), or ``None``
#: for one keyed by its own id, and their indexes before and after.
_KEYED: dict[str, tuple[list[str] | None, list[_Index], list[_Index]]] = {
    "idempotency_records": (["scope", "key"], [], []),
    "project_metadata": (["key"], [], []),
    "bundle_revisions": (
        ["bundle_name", "environment", "revision"],
        [
            ("ix_bundle_revisions_environment_status", ["environment", "status"], None),
            ("ix_bundle_revisions_bundle_name_environment_digest", ["bundle_name", "environment", "digest"], None),
            ("ix_bundle_revisions_environment_bundle_name_revision", ["environment", "bundle_name", "revision"], None),
            ("ix_bundle_revisions_status_bundle_name_environment_revision", ["status", "bundle_name", "environment", "revision"], None),
        ],
        [
            ("ix_bundle_revisions_project_id_environment_status", ["project_id", "environment", "status"], None),
            ("ix_bundle_revisions_project_id_bundle_name_environment_digest", ["project_id", "bundle_name", "environment", "digest"], None),
            ("ix_bundle_revisions_project_id_environment_bundle_name_revision", ["project_id", "environment", "bundle_name", "revision"], None),
            ("ix_bundle_revisions_project_id_status_bundle_name_environment", ["project_id", "status", "bundle_name", "environment", "revision"], None),
        ],
    ),
    "bundle_conditions": (["bundle_name", "environment", "type"], [], []),
    "bundle_suspensions": (["bundle_name", "environment"], [], []),
    "bundle_pins": (["bundle_name", "environment"], [], []),
    "blocked_digests": (["digest"], [], []),
    "controller_status": (["name"], [], []),
    "registry_changes": (
        ["bundle_name", "environment"],
        [("ix_registry_changes_seq", ["seq"], None)],
        [("ix_registry_changes_project_id_seq", ["project_id", "seq"], None)],
    ),
    "promotion_approvals": (None, [], []),
}  # fmt: skip

#: the one unique index, kept on the revisions' rebuild (partial: at most one active)
_ONE_ACTIVE = "uq_bundle_revisions_one_active"
#: promotion approvals' unique decision per approver, before and after
_DECISION = (
    ("uq_promotion_approvals_bundle_name_environment_digest_approver", ["bundle_name", "environment", "digest", "approver"]),
    ("uq_promotion_approvals_project_id_bundle_env_digest_approver", ["project_id", "bundle_name", "environment", "digest", "approver"]),
)  # fmt: skip
_TERMS = ("run_terms", "continuation_terms")


def _sqlite() -> bool:
    return bool(op.get_bind().dialect.name == "sqlite")


def _project(*, nullable: bool = False) -> sa.Column[int]:
    if nullable:
        return sa.Column("project_id", sa.Integer)
    return sa.Column("project_id", sa.Integer, nullable=False, server_default=ONE)


def _create_indexes(table: str, indexes: list[_Index], *, unique: bool = False) -> None:
    for name, columns, where in indexes:
        partial = sa.text(where) if where else None
        op.create_index(
            name, table, columns, unique=unique, sqlite_where=partial, postgresql_where=partial
        )


def _drop_indexes(table: str, indexes: list[_Index]) -> None:
    for name, _columns, _where in indexes:
        op.drop_index(name, table)


def _one_active(*, project: bool) -> _Index:
    columns = ["bundle_name", "environment"]
    return (_ONE_ACTIVE, ["project_id", *columns] if project else columns, "status = 'active'")


def _create_projects() -> None:
    """``projects`` with its first row, ``default`` (id 1); PostgreSQL's sequence goes on
    at 2."""
    op.create_table(
        "projects",
        sa.Column("id", sa.Integer, nullable=False, autoincrement=True),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("definition", sa.Text),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_projects"),
        sa.UniqueConstraint("name", name="uq_projects_name"),
    )
    stamp = _stored_now(datetime.now(UTC))
    bind = op.get_bind()
    bind.execute(
        sa.text(
            "INSERT INTO projects (id, name, status, definition, created_at, updated_at) "
            "VALUES (1, 'default', 'active', NULL, :now, :now)"
        ),
        {"now": stamp},
    )
    if not _sqlite():
        bind.execute(sa.text("SELECT setval(pg_get_serial_sequence('projects', 'id'), 1)"))


def _stored_now(now: datetime) -> object:
    """``now`` as the database stores a timestamp (SQLite: integer microseconds, 0005)."""
    if _sqlite():
        return (now - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)
    return now


def upgrade() -> None:
    _create_projects()
    for table, (before, after) in _INDEXES.items():
        op.add_column(table, _project())
        _drop_indexes(table, before)
        _create_indexes(table, after)
    op.add_column("console_sessions", _project(nullable=True))
    for table, (key, before, after) in _KEYED.items():
        _drop_indexes(table, before)
        if table == "bundle_revisions":
            _drop_indexes(table, [_one_active(project=False)])
        if _sqlite():
            _rebuild(table, key, project=True)
        else:
            _rekey(table, key, project=True)
        _create_indexes(table, after)
        if table == "bundle_revisions":
            _create_indexes(table, [_one_active(project=True)], unique=True)
    op.execute("ALTER TABLE registry_change_counter RENAME COLUMN id TO project_id")
    if not _sqlite():
        for table in _TERMS:
            op.alter_column(table, "term", type_=sa.String(48), existing_type=sa.String(40))


def _rebuild(table: str, key: list[str] | None, *, project: bool) -> None:
    """SQLite: ``table`` again with (``project``) or without ``project_id`` in front, keyed
    by it and ``key``; rows copied (the default project's when the column is new)."""
    bind = op.get_bind()
    old = sa.Table(table, sa.MetaData(), autoload_with=bind)
    kept = [c for c in old.columns if c.name != "project_id"]
    items: list[sa.schema.SchemaItem] = [_project()] if project else []
    items += [sa.Column(c.name, c.type, nullable=c.nullable, autoincrement=False) for c in kept]
    pk = ["project_id", *key] if project and key else (key or ["id"])
    items.append(sa.PrimaryKeyConstraint(*pk, name=f"pk_{table}"))
    if table == "promotion_approvals":
        name, columns = _DECISION[1] if project else _DECISION[0]
        items.append(sa.UniqueConstraint(*columns, name=name))
    scratch = f"_kneo_new_{table}"
    op.create_table(scratch, *items)
    names = ", ".join(f'"{c.name}"' for c in kept)
    copied = f"1, {names}" if project else names
    into = f"project_id, {names}" if project else names
    op.execute(f"INSERT INTO {scratch} ({into}) SELECT {copied} FROM {table}")
    op.drop_table(table)
    op.rename_table(scratch, table)


def _rekey(table: str, key: list[str] | None, *, project: bool) -> None:
    """PostgreSQL: ``table`` with (``project``) or without ``project_id``, in place; its key
    rebuilt with it in front."""
    if project:
        op.add_column(table, _project())
    if key is not None:
        op.drop_constraint(f"pk_{table}", table, type_="primary")
        op.create_primary_key(f"pk_{table}", table, ["project_id", *key] if project else key)
    if table == "promotion_approvals":
        before, after = _DECISION if project else _DECISION[::-1]
        op.drop_constraint(before[0], table, type_="unique")
        op.create_unique_constraint(after[0], table, after[1])
    if not project:
        op.drop_column(table, "project_id")


def downgrade() -> None:
    """Back to one project: refused while another exists (its rows would become the
    default project's)."""
    bind = op.get_bind()
    others = bind.execute(sa.text("SELECT count(*) FROM projects WHERE id <> 1")).scalar_one()
    if others:
        raise RuntimeError(
            f"{others} project(s) besides 'default' exist: a database before 0026 has one "
            "project; nothing was changed"
        )
    if not _sqlite():
        for table in _TERMS:
            op.alter_column(table, "term", type_=sa.String(40), existing_type=sa.String(48))
    op.execute("ALTER TABLE registry_change_counter RENAME COLUMN project_id TO id")
    for table, (key, before, after) in _KEYED.items():
        _drop_indexes(table, after)
        if table == "bundle_revisions":
            _drop_indexes(table, [_one_active(project=True)])
        if _sqlite():
            _rebuild(table, key, project=False)
        else:
            _rekey(table, key, project=False)
        _create_indexes(table, before)
        if table == "bundle_revisions":
            _create_indexes(table, [_one_active(project=False)], unique=True)
    drop_columns("console_sessions", "project_id")
    for table, (before, after) in _INDEXES.items():
        _drop_indexes(table, after)
        _create_indexes(table, before)
        drop_columns(table, "project_id")
    op.drop_table("projects")
