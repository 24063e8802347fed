"""Photo metadata (MediaMeta, one row per media file, read at detection), the face quality
score (Faces.Quality) and the person cover (Persons.CoverFaceId, Persons.CoverByUser).

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-23
"""
from alembic import op
import sqlalchemy as sa

from app.db.types import UTCDateTime

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "MediaMeta",
        sa.Column("MediaFileId", sa.Integer, nullable=False),
        sa.Column("Width", sa.Integer),
        sa.Column("Height", sa.Integer),
        sa.Column("TakenAt", sa.String(32)),
        sa.Column("CameraMake", sa.String(100)),
        sa.Column("CameraModel", sa.String(100)),
        sa.Column("Latitude", sa.Float),
        sa.Column("Longitude", sa.Float),
        sa.Column("Altitude", sa.Float),
        sa.Column("Orientation", sa.Integer),
        sa.Column("DeviceId", sa.String(200)),
        sa.Column("Problems", sa.Text),
        sa.Column("CreatedAt", UTCDateTime(), nullable=False, server_default=sa.func.now()),
        sa.PrimaryKeyConstraint("MediaFileId", name="pk_MediaMeta"),
        sa.ForeignKeyConstraint(["MediaFileId"], ["MediaFile.Id"], ondelete="CASCADE",
                                name="fk_MediaMeta_MediaFileId_MediaFile"),
    )
    with op.batch_alter_table("Faces") as batch:
        batch.add_column(sa.Column("Quality", sa.Float))
    op.create_index("ix_Faces_Quality_missing", "Faces", ["Id"],
                    postgresql_where=sa.text('"Quality" IS NULL'), sqlite_where=sa.text('"Quality" IS NULL'))
    with op.batch_alter_table("Persons") as batch:
        batch.add_column(sa.Column("CoverFaceId", sa.Integer))
        batch.add_column(sa.Column("CoverByUser", sa.Boolean, nullable=False, server_default=sa.false()))


def downgrade() -> None:
    with op.batch_alter_table("Persons") as batch:
        batch.drop_column("CoverByUser")
        batch.drop_column("CoverFaceId")
    op.drop_index("ix_Faces_Quality_missing", table_name="Faces")
    with op.batch_alter_table("Faces") as batch:
        batch.drop_column("Quality")
    op.drop_table("MediaMeta")
