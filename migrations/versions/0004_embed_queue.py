"""Faces get the same queue columns as MediaItems for the embedding stage: an attempt
count and a lease (who holds the face, until when), so embedding is claimed in a short
transaction, retried a bounded number of times and never blocks on a dead worker.

Faces that already carry an EmbedError (given up by the old code) keep it and count as
having used the default 3 attempts.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23
"""
from alembic import op
import sqlalchemy as sa

from app.db.types import UTCDateTime

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("Faces") as batch:
        batch.add_column(sa.Column("EmbedAttempts", sa.Integer, nullable=False, server_default=sa.text("0")))
        batch.add_column(sa.Column("EmbedLockedBy", sa.String(128)))
        batch.add_column(sa.Column("EmbedLockedUntil", UTCDateTime()))
    op.execute('UPDATE "Faces" SET "EmbedAttempts" = 3 WHERE "EmbedError" IS NOT NULL AND "Embedding" IS NULL')


def downgrade() -> None:
    with op.batch_alter_table("Faces") as batch:
        batch.drop_column("EmbedLockedUntil")
        batch.drop_column("EmbedLockedBy")
        batch.drop_column("EmbedAttempts")
