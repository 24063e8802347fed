from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect

from app.db import schema
from app.db.engine import make_engine
from app.db.models import Base

EXPECTED_COLUMNS = {
    "MediaFile": {"Id", "FilePath", "FileName", "Extensions", "CreatedAt", "ModifiedAt"},
    "MediaItems": {"Id", "MediaFileId", "IsFacesExtracted", "FacesExtractedOn", "CreatedAt",
                   "ModifiedAt", "Status", "Attempts", "LastError", "LockedBy", "LockedUntil"},
    "Faces": {"Id", "MediaFileId", "PersonId", "BoundingBox", "Embedding", "CreatedAt",
              "ModifiedAt", "Confidence", "Landmarks", "ThumbnailPath", "EmbeddingModel",
              "AssignedBy", "AssignedAt"},
    "Persons": {"Id", "Name", "CreatedAt", "ModifiedAt"},
}


def test_upgrade_creates_contract_tables_and_downgrade_removes_them(empty_db_url):
    engine = make_engine(empty_db_url)
    schema.upgrade(empty_db_url)
    insp = inspect(engine)
    assert set(EXPECTED_COLUMNS) <= set(insp.get_table_names())
    for table, columns in EXPECTED_COLUMNS.items():
        assert columns <= {c["name"] for c in insp.get_columns(table)}, table
    assert schema.current_revision(engine) == schema.head_revision(empty_db_url)

    schema.downgrade(empty_db_url, "base")
    left = set(inspect(engine).get_table_names()) - {"alembic_version"}
    assert left == set()
    assert schema.current_revision(engine) is None
    engine.dispose()


def test_migrations_match_the_orm_models(engine):
    with engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"compare_type": True})
        diff = compare_metadata(ctx, Base.metadata)
    assert diff == []


def test_timestamps_are_timezone_aware_on_postgresql(pg_url):
    engine = make_engine(pg_url)
    for table in EXPECTED_COLUMNS:
        cols = {c["name"]: c for c in inspect(engine).get_columns(table)}
        assert cols["CreatedAt"]["type"].timezone is True
        assert cols["ModifiedAt"]["type"].timezone is True
    engine.dispose()
