"""Person operations: Persons.IsHidden; Operations (user operations and worker runs),
AssignmentLog (every change of a face's person), FaceRejections ("not this person").

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-23
"""
from alembic import op
import sqlalchemy as sa

from app.db.types import UTCDateTime

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def _created() -> sa.Column:
    return sa.Column("CreatedAt", UTCDateTime(), nullable=False, server_default=sa.func.now())


def upgrade() -> None:
    with op.batch_alter_table("Persons") as batch:
        batch.add_column(sa.Column("IsHidden", sa.Boolean, nullable=False, server_default=sa.false()))
    op.create_table(
        "Operations",
        sa.Column("Id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("Kind", sa.String(32), nullable=False),
        sa.Column("Who", sa.String(16), nullable=False),
        sa.Column("Summary", sa.Text, nullable=False),
        sa.Column("Details", sa.Text),
        sa.Column("UndoOf", sa.Integer),
        sa.Column("UndoneBy", sa.Integer),
        _created(),
        sa.PrimaryKeyConstraint("Id", name="pk_Operations"),
    )
    op.create_table(
        "AssignmentLog",
        sa.Column("Id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("OperationId", sa.Integer, nullable=False),
        sa.Column("FaceId", sa.Integer, nullable=False),
        sa.Column("OldPersonId", sa.Integer),
        sa.Column("NewPersonId", sa.Integer),
        sa.Column("Who", sa.String(16), nullable=False),
        sa.Column("OldAssignedBy", sa.String(16)),
        sa.Column("NewAssignedBy", sa.String(16)),
        sa.Column("OldAssignedAt", UTCDateTime()),
        _created(),
        sa.PrimaryKeyConstraint("Id", name="pk_AssignmentLog"),
    )
    op.create_index("ix_AssignmentLog_OperationId", "AssignmentLog", ["OperationId"])
    op.create_index("ix_AssignmentLog_FaceId", "AssignmentLog", ["FaceId"])
    op.create_table(
        "FaceRejections",
        sa.Column("FaceId", sa.Integer, nullable=False),
        sa.Column("PersonId", sa.Integer, nullable=False),
        sa.Column("OperationId", sa.Integer),
        _created(),
        sa.PrimaryKeyConstraint("FaceId", "PersonId", name="pk_FaceRejections"),
        sa.ForeignKeyConstraint(["FaceId"], ["Faces.Id"], ondelete="CASCADE",
                                name="fk_FaceRejections_FaceId_Faces"),
    )
    op.create_index("ix_FaceRejections_PersonId", "FaceRejections", ["PersonId"])


def downgrade() -> None:
    op.drop_index("ix_FaceRejections_PersonId", table_name="FaceRejections")
    op.drop_table("FaceRejections")
    op.drop_index("ix_AssignmentLog_FaceId", table_name="AssignmentLog")
    op.drop_index("ix_AssignmentLog_OperationId", table_name="AssignmentLog")
    op.drop_table("AssignmentLog")
    op.drop_table("Operations")
    with op.batch_alter_table("Persons") as batch:
        batch.drop_column("IsHidden")
