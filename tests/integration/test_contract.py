"""The table contract other applications rely on."""
import re
import time
from pathlib import Path

from sqlalchemy import select, text, update

from app.db.engine import make_engine, session_factory
from app.db.models import MediaFile, MediaItems
from tests.integration.helpers import status_counts

README = Path(__file__).resolve().parents[2] / "README.md"


def _readme_sql(dialect: str) -> str:
    body = README.read_text()
    m = re.search(rf"<!-- insert-example:{dialect} -->\s*```sql\n(.*?)```", body, re.S)
    assert m, f"README has no insert example for {dialect}"
    return m.group(1)


def test_readme_insert_example_registers_a_pending_item(db_url, cli):
    engine = make_engine(db_url)
    dialect = engine.dialect.name
    with engine.begin() as conn:
        for statement in filter(str.strip, _readme_sql(dialect).split(";")):
            conn.execute(text(statement))
    with session_factory(engine)() as s:
        item = s.execute(select(MediaItems)).scalar_one()
        assert item.IsFacesExtracted is False and item.Status == "pending" and item.Attempts == 0
        assert item.CreatedAt.tzinfo is not None and item.FacesExtractedOn is None
        media = s.get(MediaFile, item.MediaFileId)
        assert media.FileName == "IMG_0001.jpg"
    engine.dispose()
    counts = status_counts(cli)
    assert counts["media"] == 1 and counts["pending"] == 1


def test_modified_at_changes_on_update(engine):
    with session_factory(engine).begin() as s:
        s.add(MediaFile(FilePath="/p/a.jpg", FileName="a.jpg", Extensions=".jpg"))
    with session_factory(engine)() as s:
        before = s.execute(select(MediaFile)).scalar_one()
    time.sleep(1.1)  # SQLite's CURRENT_TIMESTAMP has one-second resolution
    with session_factory(engine).begin() as s:
        s.execute(update(MediaFile).values(FileName="b.jpg"))
    with session_factory(engine)() as s:
        after = s.execute(select(MediaFile)).scalar_one()
    assert after.FileName == "b.jpg"
    assert after.CreatedAt == before.CreatedAt
    assert after.ModifiedAt > before.ModifiedAt


def test_modified_at_changes_on_another_applications_update(engine):
    with engine.begin() as conn:
        conn.execute(text('INSERT INTO "MediaFile" ("FilePath", "FileName") VALUES (\'/p/x.jpg\', \'x.jpg\')'))
    with session_factory(engine)() as s:
        before = s.execute(select(MediaFile)).scalar_one()
    time.sleep(1.1)
    with engine.begin() as conn:  # plain SQL that does not mention ModifiedAt
        conn.execute(text('UPDATE "MediaFile" SET "FileName" = \'y.jpg\''))
    with session_factory(engine)() as s:
        after = s.execute(select(MediaFile)).scalar_one()
    assert after.FileName == "y.jpg" and after.ModifiedAt > before.ModifiedAt
