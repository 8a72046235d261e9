"""The outbox's tables: notification events and their deliveries (migration 0010), and A2A
push notification configs (0025).
"""

from __future__ import annotations

import sqlalchemy as sa

from kneo.store.column_types import JSONText, UTCDateTime
from kneo.store.table_metadata import BigId, metadata, project_column

# One row per notifiable event, written in the same transaction as the event itself (an
# audit event's id, or a deterministic id for a sweep's ``human.expiring``), so a crash can
# neither lose nor invent one. ``routed`` turns true when the dispatcher has fanned the
# event out to the matching receivers' ``notifications`` rows (one transaction too).
notification_events = sa.Table(
    "notification_events",
    metadata,
    sa.Column("event_id", sa.String(128), primary_key=True),
    sa.Column("event_type", sa.String(64), nullable=False),
    sa.Column("severity", sa.String(16), nullable=False),
    sa.Column("environment", sa.String(128)),
    sa.Column("assignee", sa.String(255)),
    sa.Column("actor", sa.String(255)),
    sa.Column("run_id", sa.String(128)),
    sa.Column("continuation_id", sa.String(128)),
    sa.Column("payload", JSONText, nullable=False),
    sa.Column("routed", sa.Boolean, nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    project_column(),  # (routing is global: each event says whose it is)
    sa.Index(None, "routed", "created_at"),
)

# One delivery per (event, receiver): ``pending`` (due at ``available_at``), ``sending``
# (leased to ``lease_owner`` until ``lease_expires_at``), ``sent`` or ``dead``.
notifications = sa.Table(
    "notifications",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column(
        "event_id",
        sa.String(128),
        sa.ForeignKey("notification_events.event_id", ondelete="CASCADE"),
        nullable=False,
    ),
    sa.Column("receiver", sa.String(128), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("available_at", UTCDateTime, nullable=False),
    sa.Column("lease_owner", sa.String(255)),
    sa.Column("lease_expires_at", UTCDateTime),
    sa.Column("last_error", sa.Text),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    sa.Column("sent_at", UTCDateTime),
    # the event's continuation id: a task's deliveries to a receiver go in order (0016)
    sa.Column("task", sa.String(128)),
    project_column(),  # its event's (0026)
    sa.UniqueConstraint("event_id", "receiver"),
    sa.Index(None, "status", "available_at"),
    sa.Index(None, "receiver", "task", "id"),
)

# One row per push config an A2A client set on a task (a run), its owner the caller who set
# it: the URL's origin (on the operator's allow-list when set) and the authentication scheme
# in clear, the URL itself (its path may be a capability), the token and the credentials
# sealed (``kneo.platform.a2a_push.seal``; never in clear). The push
# sweep compares ``pushed_status`` with the run's status: a change is one outbox event,
# written under a compare-and-set on ``pushed_seq`` (one event per change, however many
# replicas sweep); ``done`` once a final state is pushed, which the sweep's index skips.
a2a_push_configs = sa.Table(
    "a2a_push_configs",
    metadata,
    sa.Column("push_id", sa.String(64), primary_key=True),
    sa.Column("run_id", sa.String(128), nullable=False),
    sa.Column("config_id", sa.String(128), nullable=False),
    sa.Column("owner", sa.String(255), nullable=False),
    sa.Column("origin", sa.String(512), nullable=False),
    sa.Column("auth_scheme", sa.String(64)),
    sa.Column("sealed", sa.Text, nullable=False),
    # whether the owner could read human tasks when it set the config: a push carries the
    # pending request's question only then, as GetTask would
    sa.Column("sees_requests", sa.Boolean, nullable=False),
    sa.Column("pushed_status", sa.String(32)),
    sa.Column("pushed_seq", sa.Integer, nullable=False),
    sa.Column("done", sa.Boolean, nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    project_column(),  # its run's (0026); the push sweep is global
    sa.UniqueConstraint("run_id", "owner", "config_id"),
    sa.Index(None, "done", "run_id"),
)
