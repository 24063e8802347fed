"""Faces.Embedding2 / Embedding2Model: a second face vector (SFace) beside the contract's
FaceNet one, for the model that decides persons; Faces.ConsideredAt: when the assignment
step last left the face without a person (a run with nothing new changes nothing).

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-23
"""
from alembic import op
import sqlalchemy as sa

from app.db.types import UTCDateTime

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("Faces") as batch:
        batch.add_column(sa.Column("Embedding2", sa.LargeBinary))
        batch.add_column(sa.Column("Embedding2Model", sa.String(64)))
        batch.add_column(sa.Column("ConsideredAt", UTCDateTime()))
    # The embedding stage's query with a second model: usable faces missing a vector.
    op.create_index("ix_Faces_Embedding2_pending", "Faces", ["IsUsable", "MediaFileId"],
                    postgresql_where=sa.text('"Embedding2" IS NULL'),
                    sqlite_where=sa.text('"Embedding2" IS NULL'))


def downgrade() -> None:
    op.drop_index("ix_Faces_Embedding2_pending", table_name="Faces")
    with op.batch_alter_table("Faces") as batch:
        batch.drop_column("ConsideredAt")
        batch.drop_column("Embedding2Model")
        batch.drop_column("Embedding2")
