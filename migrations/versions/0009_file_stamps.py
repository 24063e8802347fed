"""What detection read of each file (MediaItems.FileSize / FileMtimeNs / ContentHash), so a
photo replaced under its name is detected again, and MissingSince for files gone.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-04
"""
from alembic import op
import sqlalchemy as sa

from app.db.types import UTCDateTime

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("MediaItems") as batch:
        batch.add_column(sa.Column("FileSize", sa.BigInteger))
        batch.add_column(sa.Column("FileMtimeNs", sa.BigInteger))
        batch.add_column(sa.Column("ContentHash", sa.String(64)))
        batch.add_column(sa.Column("MissingSince", UTCDateTime()))


def downgrade() -> None:
    with op.batch_alter_table("MediaItems") as batch:
        batch.drop_column("MissingSince")
        batch.drop_column("ContentHash")
        batch.drop_column("FileMtimeNs")
        batch.drop_column("FileSize")
