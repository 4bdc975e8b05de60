"""durable runs on procrastinate

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22

Installs procrastinate's own schema (the job queue lives in the same database as the
results, so a job can be deferred in the same transaction as the state that motivates
it) and the run bookkeeping tables:

- `run_items`: one row per (run, per-conversation stage, conversation) with its state
  (pending, done, skipped, dead), attempts and start/finish times. Item transitions are
  `UPDATE ... WHERE state = 'pending' RETURNING`, so a batch executed twice counts once.
- `run_phases`: one row per (run, phase) with its state (pending, active, done) and
  start/finish times; a whole-run phase is deferred only by the transaction that flips
  it from pending to active.
- `runs.generation`: bumped by resume; jobs of an older generation do nothing.
- a partial unique index: at most one open (not yet retried) dead letter per item.

The procrastinate schema is the SQL shipped with the installed procrastinate (3.10.x).
A later procrastinate upgrade that changes its schema needs a new Alembic revision that
applies procrastinate's migration files (procrastinate/sql/migrations) for that range.
"""

from importlib import resources

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def _procrastinate_schema() -> str:
    return (resources.files("procrastinate.sql") / "schema.sql").read_text(encoding="utf-8")


def upgrade() -> None:
    bind = op.get_bind()
    installed = bind.exec_driver_sql("SELECT to_regclass('procrastinate_jobs')").scalar()
    if installed is None:
        # As procrastinate's SchemaManager.apply_schema does: the driver sees "%%" as a literal "%".
        bind.exec_driver_sql(_procrastinate_schema().replace("%", "%%"))

    op.add_column("runs", sa.Column("generation", sa.Integer(), server_default="0", nullable=False))

    op.create_table(
        "run_items",
        sa.Column("run_id", sa.BigInteger(), nullable=False),
        sa.Column("stage", sa.String(length=32), nullable=False),
        sa.Column("conversation_id", sa.BigInteger(), nullable=False),
        sa.Column("state", sa.String(length=16), server_default="pending", nullable=False),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("state IN ('pending', 'done', 'skipped', 'dead')", name="ck_run_items_state"),
        sa.ForeignKeyConstraint(["run_id"], ["runs.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["conversation_id"], ["conversations.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("run_id", "stage", "conversation_id"),
    )
    op.create_index("ix_run_items_run_stage_state", "run_items", ["run_id", "stage", "state"])

    op.create_table(
        "run_phases",
        sa.Column("run_id", sa.BigInteger(), nullable=False),
        sa.Column("phase", sa.String(length=32), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(length=16), server_default="pending", nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("state IN ('pending', 'active', 'done')", name="ck_run_phases_state"),
        sa.ForeignKeyConstraint(["run_id"], ["runs.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("run_id", "phase"),
    )
    op.create_index(
        "ux_dead_letters_open_item",
        "dead_letters",
        ["run_id", "stage", "item"],
        unique=True,
        postgresql_where=sa.text("retried_at IS NULL"),
    )


def downgrade() -> None:
    op.drop_index("ux_dead_letters_open_item", table_name="dead_letters")
    op.drop_table("run_phases")
    op.drop_index("ix_run_items_run_stage_state", table_name="run_items")
    op.drop_table("run_items")
    op.drop_column("runs", "generation")
    bind = op.get_bind()
    bind.exec_driver_sql(
        r"""
        DO $$
        DECLARE r record;
        BEGIN
            FOR r IN SELECT tablename FROM pg_tables WHERE schemaname = current_schema() AND tablename LIKE 'procrastinate%' LOOP
                EXECUTE format('DROP TABLE IF EXISTS %I CASCADE', r.tablename);
            END LOOP;
            FOR r IN SELECT p.oid::regprocedure AS sig FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
                     WHERE n.nspname = current_schema() AND p.proname LIKE 'procrastinate%' LOOP
                EXECUTE format('DROP FUNCTION IF EXISTS %s CASCADE', r.sig);
            END LOOP;
            FOR r IN SELECT t.typname FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
                     WHERE n.nspname = current_schema() AND t.typname LIKE 'procrastinate%' AND t.typtype IN ('e', 'c') LOOP
                EXECUTE format('DROP TYPE IF EXISTS %I CASCADE', r.typname);
            END LOOP;
        END $$;
        """.replace("%", "%%")
    )
