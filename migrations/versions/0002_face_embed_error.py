"""Faces.EmbedError: why a face could not be embedded (so it is not retried forever).

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22
"""
from alembic import op
import sqlalchemy as sa

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("Faces") as batch:
        batch.add_column(sa.Column("EmbedError", sa.Text))
    # The embedding stage's query: usable faces without an embedding.
    op.create_index("ix_Faces_Embedding_pending", "Faces", ["IsUsable", "MediaFileId"],
                    postgresql_where=sa.text('"Embedding" IS NULL'),
                    sqlite_where=sa.text('"Embedding" IS NULL'))


def downgrade() -> None:
    op.drop_index("ix_Faces_Embedding_pending", table_name="Faces")
    with op.batch_alter_table("Faces") as batch:
        batch.drop_column("EmbedError")
