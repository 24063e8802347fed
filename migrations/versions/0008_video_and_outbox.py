"""Video input (Faces.FrameNumber / FrameTimeMs / TrackNumber, MediaMeta's video facts)
and the publishing outbox (PublishEvents).

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-24
"""
from alembic import op
import sqlalchemy as sa

from app.db.types import UTCDateTime

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("Faces") as batch:
        batch.add_column(sa.Column("FrameNumber", sa.Integer))
        batch.add_column(sa.Column("FrameTimeMs", sa.BigInteger))
        batch.add_column(sa.Column("TrackNumber", sa.Integer))
    with op.batch_alter_table("MediaMeta") as batch:
        batch.add_column(sa.Column("MediaType", sa.String(8)))
        batch.add_column(sa.Column("DurationMs", sa.BigInteger))
        batch.add_column(sa.Column("Codec", sa.String(32)))
        batch.add_column(sa.Column("FrameRate", sa.Float))
    op.create_table(
        "PublishEvents",
        sa.Column("Id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("MediaFileId", sa.Integer, nullable=False),
        sa.Column("Status", sa.String(16), nullable=False, server_default=sa.text("'queued'")),
        sa.Column("IdempotencyKey", sa.String(64)),
        sa.Column("Payload", sa.Text),
        sa.Column("Attempts", sa.Integer, nullable=False, server_default=sa.text("0")),
        sa.Column("NextAttemptAt", UTCDateTime()),
        sa.Column("LastError", sa.Text),
        sa.Column("LockedBy", sa.String(128)),
        sa.Column("LockedUntil", UTCDateTime()),
        sa.Column("SentAt", UTCDateTime()),
        sa.Column("CreatedAt", UTCDateTime(), nullable=False, server_default=sa.func.now()),
        sa.PrimaryKeyConstraint("Id", name="pk_PublishEvents"),
        sa.UniqueConstraint("IdempotencyKey", name="uq_PublishEvents_IdempotencyKey"),
    )
    op.create_index("ix_PublishEvents_queued", "PublishEvents", ["MediaFileId"], unique=True,
                    postgresql_where=sa.text("\"Status\" = 'queued'"), sqlite_where=sa.text("\"Status\" = 'queued'"))
    op.create_index("ix_PublishEvents_Status_Id", "PublishEvents", ["Status", "Id"])


def downgrade() -> None:
    op.drop_index("ix_PublishEvents_Status_Id", table_name="PublishEvents")
    op.drop_index("ix_PublishEvents_queued", table_name="PublishEvents")
    op.drop_table("PublishEvents")
    with op.batch_alter_table("MediaMeta") as batch:
        batch.drop_column("FrameRate")
        batch.drop_column("Codec")
        batch.drop_column("DurationMs")
        batch.drop_column("MediaType")
    with op.batch_alter_table("Faces") as batch:
        batch.drop_column("TrackNumber")
        batch.drop_column("FrameTimeMs")
        batch.drop_column("FrameNumber")
