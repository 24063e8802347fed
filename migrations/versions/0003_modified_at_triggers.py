"""Triggers that bump ModifiedAt on every UPDATE, including other applications' updates.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22
"""
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

TABLES = ("MediaFile", "MediaItems", "Faces", "Persons")
FUNCTION = "facegroup_touch_modified_at"


def upgrade() -> None:
    if op.get_context().dialect.name == "postgresql":
        op.execute(
            f'CREATE OR REPLACE FUNCTION {FUNCTION}() RETURNS trigger AS $$ '
            'BEGIN NEW."ModifiedAt" = now(); RETURN NEW; END; $$ LANGUAGE plpgsql'
        )
        for table in TABLES:
            op.execute(
                f'CREATE TRIGGER "trg_{table}_modified_at" BEFORE UPDATE ON "{table}" '
                f"FOR EACH ROW EXECUTE FUNCTION {FUNCTION}()"
            )
    else:  # SQLite: after the update, unless the statement set ModifiedAt itself
        for table in TABLES:
            op.execute(
                f'CREATE TRIGGER "trg_{table}_modified_at" AFTER UPDATE ON "{table}" FOR EACH ROW '
                'WHEN NEW."ModifiedAt" IS OLD."ModifiedAt" '
                f'BEGIN UPDATE "{table}" SET "ModifiedAt" = CURRENT_TIMESTAMP WHERE "Id" = NEW."Id"; END'
            )


def downgrade() -> None:
    postgres = op.get_context().dialect.name == "postgresql"
    for table in TABLES:
        op.execute(f'DROP TRIGGER IF EXISTS "trg_{table}_modified_at"' + (f' ON "{table}"' if postgres else ""))
    if postgres:
        op.execute(f"DROP FUNCTION IF EXISTS {FUNCTION}()")
