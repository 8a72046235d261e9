"""The rollouts' tables, on the store's metadata: ``rollouts`` (migration 0030), their runs'
counters ``rollout_sums`` (0030; kinds 0035, priced 0034) and a judge's verdicts
``rollout_judgements`` (0036), with the constants their rows are written by.
"""

from __future__ import annotations

import sqlalchemy as sa

from kneo.store import tables as t

rollouts = sa.Table(
    "rollouts",
    t.metadata,
    sa.Column("rollout_id", sa.String(64), primary_key=True),
    sa.Column("project_id", sa.Integer, nullable=False),
    sa.Column("bundle_name", sa.String(255), nullable=False),
    sa.Column("environment", sa.String(128), nullable=False),
    sa.Column("stable_revision", sa.Integer, nullable=False),
    sa.Column("canary_revision", sa.Integer, nullable=False),
    sa.Column("canary_digest", sa.String(128)),
    sa.Column("commit", sa.String(128)),
    # progressing | paused | promoted | aborted | superseded
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("step", sa.Integer, nullable=False),
    sa.Column("weight", sa.Integer, nullable=False),
    # the rollout policy it follows and the freeze windows of the policy it began under
    sa.Column("policy", t.JSONText, nullable=False),
    sa.Column("reason", sa.Text),
    sa.Column("figures", t.JSONText),
    sa.Column("started_at", t.UTCDateTime, nullable=False),
    sa.Column("step_started_at", t.UTCDateTime, nullable=False),
    sa.Column("updated_at", t.UTCDateTime, nullable=False),
    sa.Column("finished_at", t.UTCDateTime),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Index(
        "ix_rollouts_project_id_bundle_name_environment_started_at",
        "project_id",
        "bundle_name",
        "environment",
        "started_at",
    ),
)

#: rows per side and latency bucket the counters of a rollout are spread over
SHARDS = 16
#: the bucket of counters that are not a settled run's (starts, decisions)
NO_LATENCY = -1

rollout_sums = sa.Table(
    "rollout_sums",
    t.metadata,
    sa.Column("rollout_id", sa.String(64), primary_key=True),
    sa.Column("track", sa.String(8), primary_key=True),  # canary | stable
    sa.Column("bucket", sa.Integer, primary_key=True),
    # a human request's kind for its decisions' counters ('': starts and outcomes; 0035)
    sa.Column("kind", sa.String(32), primary_key=True, server_default=""),
    sa.Column("shard", sa.Integer, primary_key=True),
    sa.Column("runs", sa.BigInteger, nullable=False),
    sa.Column("finished", sa.BigInteger, nullable=False),
    sa.Column("failed", sa.BigInteger, nullable=False),
    sa.Column("decided", sa.BigInteger, nullable=False),
    sa.Column("rejected", sa.BigInteger, nullable=False),
    sa.Column("edited", sa.BigInteger, nullable=False),
    sa.Column("escalated", sa.BigInteger, nullable=False),
    sa.Column("cost", sa.Float, nullable=False),
    # finished runs whose cost is known (every model call priced; 0034): cost is their sum
    sa.Column("priced", sa.BigInteger, nullable=False, server_default="0"),
    sqlite_with_rowid=False,
)
#: the longest reason a judgement keeps
JUDGE_REASON_CHARS = 200

rollout_judgements = sa.Table(
    "rollout_judgements",
    t.metadata,
    sa.Column("rollout_id", sa.String(64), primary_key=True),
    sa.Column("run_id", sa.String(128), primary_key=True),
    sa.Column("project_id", sa.Integer, nullable=False),
    sa.Column("track", sa.String(8), nullable=False),  # canary | stable
    sa.Column("passed", sa.Boolean, nullable=False),
    # the judge's reply, redacted and cut to JUDGE_REASON_CHARS
    sa.Column("reason", sa.String(JUDGE_REASON_CHARS), nullable=False),
    sa.Column("judged_at", t.UTCDateTime, nullable=False),
)

#: the counters of ``rollout_sums``, in the order its sums are read
COUNTERS = (
    "runs", "finished", "failed", "decided", "rejected", "edited", "escalated", "cost", "priced"
)  # fmt: skip
#: rollout statuses whose canary still takes a share of new runs
MOVING = ("progressing", "paused")
