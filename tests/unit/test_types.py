from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy.dialects import postgresql, sqlite

from app.db.types import UTCDateTime


def test_naive_datetimes_are_refused():
    with pytest.raises(ValueError, match="naive"):
        UTCDateTime().process_bind_param(datetime(2026, 1, 1), postgresql.dialect())


def test_sqlite_round_trip_keeps_utc():
    t = UTCDateTime()
    local = datetime(2026, 1, 1, 12, 0, tzinfo=timezone(timedelta(hours=2)))
    stored = t.process_bind_param(local, sqlite.dialect())
    assert stored == datetime(2026, 1, 1, 10, 0)
    back = t.process_result_value(stored, sqlite.dialect())
    assert back == local and back.tzinfo == timezone.utc
