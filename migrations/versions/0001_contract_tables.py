"""The four contract tables: MediaFile, MediaItems, Persons, Faces.

Revision ID: 0001
Revises:
Create Date: 2026-11-22
"""
from alembic import op
import sqlalchemy as sa

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def _audit() -> list[sa.Column]:
    return [
        sa.Column("CreatedAt", TS, nullable=False, server_default=sa.func.now()),
        sa.Column("ModifiedAt", TS, nullable=False, server_default=sa.func.now()),
    ]


def upgrade() -> None:
    op.create_table(
        "MediaFile",
        sa.Column("Id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("FilePath", sa.String(500), nullable=False),
        sa.Column("FileName", sa.String(255), nullable=False),
        sa.Column("Extensions", sa.String(10)),
        *_audit(),
        sa.PrimaryKeyConstraint("Id", name="pk_MediaFile"),
    )
    op.create_index("ix_MediaFile_FilePath", "MediaFile", ["FilePath"])

    op.create_table(
        "MediaItems",
        sa.Column("Id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("MediaFileId", sa.Integer, nullable=False),
        sa.Column("IsFacesExtracted", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("FacesExtractedOn", TS),
        sa.Column("Status", sa.String(16), nullable=False, server_default=sa.text("'pending'")),
        sa.Column("Attempts", sa.Integer, nullable=False, server_default=sa.text("0")),
        sa.Column("LastError", sa.Text),
        sa.Column("LockedBy", sa.String(128)),
        sa.Column("LockedUntil", TS),
        sa.Column("FaceCount", sa.Integer),
        *_audit(),
        sa.PrimaryKeyConstraint("Id", name="pk_MediaItems"),
        sa.ForeignKeyConstraint(
            ["MediaFileId"], ["MediaFile.Id"],
            name="fk_MediaItems_MediaFileId_MediaFile", ondelete="CASCADE",
        ),
    )
    op.create_index("ix_MediaItems_MediaFileId", "MediaItems", ["MediaFileId"])
    op.create_index("ix_MediaItems_pending", "MediaItems", ["IsFacesExtracted", "Id"])

    op.create_table(
        "Persons",
        sa.Column("Id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("Name", sa.String(255)),
        sa.Column("IsAutomatic", sa.Boolean, nullable=False, server_default=sa.false()),
        *_audit(),
        sa.PrimaryKeyConstraint("Id", name="pk_Persons"),
    )

    op.create_table(
        "Faces",
        sa.Column("Id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("MediaFileId", sa.Integer, nullable=False),
        sa.Column("PersonId", sa.Integer),
        sa.Column("BoundingBox", sa.String(255)),
        sa.Column("Embedding", sa.LargeBinary),
        sa.Column("EmbeddingModel", sa.String(64)),
        sa.Column("Confidence", sa.Float),
        sa.Column("Landmarks", sa.Text),
        sa.Column("ThumbnailPath", sa.String(500)),
        sa.Column("Blur", sa.Float),
        sa.Column("IsUsable", sa.Boolean, nullable=False, server_default=sa.true()),
        sa.Column("AssignedBy", sa.String(16)),
        sa.Column("AssignedAt", TS),
        *_audit(),
        sa.PrimaryKeyConstraint("Id", name="pk_Faces"),
        sa.ForeignKeyConstraint(
            ["MediaFileId"], ["MediaFile.Id"],
            name="fk_Faces_MediaFileId_MediaFile", ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["PersonId"], ["Persons.Id"],
            name="fk_Faces_PersonId_Persons", ondelete="SET NULL",
        ),
    )
    op.create_index("ix_Faces_MediaFileId", "Faces", ["MediaFileId"])
    op.create_index("ix_Faces_PersonId", "Faces", ["PersonId"])


def downgrade() -> None:
    op.drop_table("Faces")
    op.drop_table("Persons")
    op.drop_table("MediaItems")
    op.drop_table("MediaFile")
