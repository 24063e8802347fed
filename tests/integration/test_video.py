"""Video input (issue 14) through the real models and both databases: clips the test encodes
itself from dev photos with PyAV (a person appearing and leaving, two people in one frame),
tracks and their best faces, frame numbers and times, persons shared with photos of the
same people, the embedding stage and --export cutting faces from frames, the published
event, and bad videos failing with their reasons."""
from __future__ import annotations

import io
import json
from dataclasses import replace
from pathlib import Path

import jsonschema
import numpy as np
import pytest
from PIL import Image
from sqlalchemy import func, select, update

from app.db.engine import make_engine, session_factory
from app.db.models import Faces, MediaFile, MediaItems, MediaMeta
from app.services.detect import detect_pending
from app.services.export import export
from app.services.ingest import ingest_folder
from app.services.publish import publish
from app.services.recognize import recognize
from app.services.run import detect_and_recognize
from app.stopping import StopFlag
from tests.integration.helpers import copy_images
from tests.integration.persons_world import settings_for
from tests.integration.receiver import Receiver
from tests.video_clips import Scene, Shot, write_audio_only, write_clip, write_portrait

ROOT = Path(__file__).resolve().parents[2]
CHIP_SCHEMA = json.loads((ROOT / "schemas" / "export-chip.schema.json").read_text())
AGASSI, JOLIE, GUL = "Andre_Agassi", "Angelina_Jolie", "Abdullah_Gul"
FPS = 10


def clip_scenes(dev: Path) -> list[Scene]:
    """0-4 s: Agassi alone (appears, then leaves); 4-6 s: nobody; 6-10 s: Jolie (left) and
    Gul (right) in the same frames."""
    return [
        Scene(4, [Shot(dev / AGASSI / "01.jpg", 180, 40, 280)]),
        Scene(2, []),
        Scene(4, [Shot(dev / JOLIE / "01.jpg", 20, 40, 280), Shot(dev / GUL / "01.jpg", 340, 40, 280)]),
    ]


def _by_identity(sessions) -> dict[str, set[int]]:
    """identity -> persons of the largest face of each photo (the photos' names say who)."""
    out: dict[str, set[int]] = {}
    with sessions() as s:
        rows = s.execute(select(MediaFile.FileName, Faces.PersonId, Faces.BoundingBox)
                         .join(Faces, Faces.MediaFileId == MediaFile.Id)
                         .where(Faces.FrameNumber.is_(None))).all()
    best: dict[str, tuple[float, int]] = {}
    for name, person, box in rows:
        b = json.loads(box)
        if name not in best or b["w"] * b["h"] > best[name][0]:
            best[name] = (b["w"] * b["h"], person)
    for name, (_, person) in best.items():
        out.setdefault(name.rsplit("_", 1)[0], set()).add(person)
    return out


@pytest.fixture
def library(db_url, models, faces_dev, tmp_path):
    folder = tmp_path / "library"
    folder.mkdir()
    frames = write_clip(folder / "clip.mp4", clip_scenes(faces_dev), fps=FPS, created="2024-01-15T13:24:00.000000Z")
    assert frames == 10 * FPS
    copy_images([faces_dev / i / f"{n:02d}.jpg" for i in (AGASSI, JOLIE, GUL) for n in (2, 3, 4)], folder)
    engine = make_engine(db_url)
    sessions = session_factory(engine)
    settings = replace(settings_for(db_url, tmp_path / "thumbs"), publish_backoff_seconds=0.05)
    assert ingest_folder(sessions, folder).added == 10
    report = detect_and_recognize(sessions, models[0], models[1], settings)
    assert report.failed == 0
    yield sessions, settings, folder
    engine.dispose()


def _video_faces(sessions):
    with sessions() as s:
        return s.execute(select(Faces.Id, Faces.FrameNumber, Faces.FrameTimeMs, Faces.TrackNumber, Faces.PersonId,
                                Faces.BoundingBox, Faces.IsUsable, Faces.Embedding, Faces.Embedding2)
                         .where(Faces.FrameNumber.is_not(None)).order_by(Faces.TrackNumber, Faces.FrameNumber)).all()


def test_tracks_frames_and_persons_shared_with_photos(library):
    sessions, settings, folder = library
    faces = _video_faces(sessions)
    # sampled once a second: frame numbers are multiples of 10 and times their ms
    assert faces and all(f.FrameNumber % FPS == 0 and f.FrameTimeMs == f.FrameNumber * 1000 // FPS for f in faces)
    by_track: dict[int, list] = {}
    for f in faces:
        by_track.setdefault(f.TrackNumber, []).append(f)
    # each track keeps at most VIDEO_FACES_PER_TRACK (3) of its 4 sampled faces
    assert all(len(v) <= settings.video_faces_per_track for v in by_track.values())

    def track_where(frames: range, x_min: float, x_max: float) -> list:
        return [t for t, v in by_track.items()
                if all(f.FrameNumber in frames and x_min <= json.loads(f.BoundingBox)["x"] < x_max for f in v)
                and len(v) == 3]

    agassi, jolie, gul = track_where(range(0, 40), 180, 460), track_where(range(60, 100), 0, 320), \
        track_where(range(60, 100), 320, 640)
    assert len(agassi) == 1 and len(jolie) == 1 and len(gul) == 1, by_track
    # nobody is in frames 40-59 (the person left)
    assert not [f for f in faces if 40 <= f.FrameNumber < 60]
    # each track is one person, the person of the same identity's photos
    persons = _by_identity(sessions)
    for track, identity in ((agassi[0], AGASSI), (jolie[0], JOLIE), (gul[0], GUL)):
        track_persons = {f.PersonId for f in by_track[track]}
        assert len(track_persons) == 1 and track_persons == persons[identity], (identity, track_persons, persons)
    # two people of one frame stay two persons; every video face was embedded on the way
    assert {f.PersonId for f in by_track[jolie[0]]}.isdisjoint({f.PersonId for f in by_track[gul[0]]})
    assert all(f.Embedding is not None and f.Embedding2 is not None for f in faces if f.IsUsable)

    with sessions() as s:
        meta = s.execute(select(MediaMeta).join(MediaFile, MediaFile.Id == MediaMeta.MediaFileId)
                         .where(MediaFile.FileName == "clip.mp4")).scalar_one()
        assert (meta.MediaType, meta.DurationMs, meta.Codec, meta.FrameRate, meta.Width, meta.Height) == \
            ("video", 10000, "h264", 10.0, 640, 360)
        assert meta.TakenAt.startswith("2024-01-15T13:24:00") and meta.TakenAt.endswith("+00:00")


def test_embedding_export_and_event_cut_faces_from_the_frames(library, models, tmp_path):
    sessions, settings, _ = library
    before = {f.Id: np.frombuffer(f.Embedding2, np.float32) for f in _video_faces(sessions) if f.IsUsable}
    # as after a change of the deciding model: the embedding stage cuts them from their frames
    with sessions.begin() as s:
        s.execute(update(Faces).where(Faces.Id.in_(list(before))).values(Embedding2=None, Embedding2Model=None))
    report = recognize(sessions, models[1], settings)
    assert report.embed.faces == len(before) and report.embed.failed == 0
    after = {f.Id: np.frombuffer(f.Embedding2, np.float32) for f in _video_faces(sessions) if f.IsUsable}
    assert all(float(before[i] @ after[i]) > 0.99 for i in before)

    out = tmp_path / "export"
    export(sessions, settings, out)
    chips = [json.loads(p.read_text()) for p in out.glob("*/faces/*.json")]
    video = [c for c in chips if c["type"] == "video"]
    assert len(video) == len([f for f in _video_faces(sessions) if f.PersonId is not None])
    for c in chips:
        jsonschema.validate(c, CHIP_SCHEMA)
    for c in video:
        assert c["sourceFile"].endswith("clip.mp4") and (out / c["file"]).stat().st_size > 0
        ms = c["frameNumber"] * 1000 // FPS
        assert c["videoTimestamp"] == f"00:00:{ms // 1000:02d}.{ms % 1000:03d}"
        # the recording's creation time, from the container
        assert c["timestamp"].startswith("2024-01-15T13:24:00") and c["timestampSource"] == "video"

    with Receiver() as rx:
        assert publish(sessions, replace(settings, publish_url=rx.url)).failed == 0
    event = next(b[0] for b in rx.accepted().values() if b[0]["source"]["fileName"] == "clip.mp4")
    assert event["source"]["type"] == "video" and event["source"]["video"]["durationMs"] == 10000
    assert {f["frameNumber"] for f in event["faces"]} == {f.FrameNumber for f in _video_faces(sessions)}
    assert all(f["type"] == "video" and f["videoTimestamp"].startswith("00:00:") for f in event["faces"])


def test_the_review_page_shows_a_video_face_in_its_frame(library):
    from starlette.testclient import TestClient

    from app.web.server import create_app

    sessions, settings, _ = library
    video_face = _video_faces(sessions)[0]
    with sessions() as s:
        photo_face, photo_path = s.execute(select(Faces.Id, MediaFile.FilePath).join(MediaFile)
                                           .where(Faces.FrameNumber.is_(None))).first()
    with TestClient(create_app(settings, sessions), base_url="http://127.0.0.1") as client:
        frame = client.get(f"/faces/{video_face.Id}/photo")
        assert frame.status_code == 200 and frame.headers["content-type"] == "image/jpeg"
        with Image.open(io.BytesIO(frame.content)) as im:
            assert im.size == (640, 360)
        photo = client.get(f"/faces/{photo_face}/photo")
        assert photo.status_code == 200 and photo.content == Path(photo_path).read_bytes()
        assert client.get("/faces/999999/photo").status_code == 404
        page = client.get(f"/persons/{video_face.PersonId}")
        assert f'data-photo="/faces/{video_face.Id}/photo"' in page.text


def test_bad_videos_fail_with_their_reason_and_good_ones_go_through_db(cli_factory, db_url, faces_dev, tmp_path):
    """--db (no embedder given: it is loaded for the first video) over a good clip and
    broken ones: each broken one fails with its own reason, the batch goes on."""
    folder = tmp_path / "videos"
    folder.mkdir()
    scenes = clip_scenes(faces_dev)
    write_clip(folder / "good.webm", scenes[:1], fps=5, codec="libvpx-vp9")
    # filmed upright on a phone: stored sideways, turned by the container's matrix
    write_portrait(folder / "portrait.mp4", [Scene(2, [Shot(faces_dev / AGASSI / "01.jpg", 40, 150, 280)])],
                   size=(360, 640), fps=5)
    write_clip(folder / "whole.mp4", scenes, fps=5, faststart=True)
    data = (folder / "whole.mp4").read_bytes()
    (folder / "cut.mp4").write_bytes(data[:len(data) // 2])  # a copy cut short
    (folder / "whole.mp4").unlink()
    (folder / "empty.mov").write_bytes(b"")
    (folder / "notes.mkv").write_bytes(b"this is not a video " * 100)
    write_audio_only(folder / "voice.m4v")
    write_clip(folder / "odd.avi", scenes[:1], fps=5, codec="mpeg4")
    avi = (folder / "odd.avi").read_bytes()
    assert avi.count(b"FMP4") == 2
    (folder / "odd.avi").write_bytes(avi.replace(b"FMP4", b"ZQ9X"))  # a codec no decoder knows

    cli = cli_factory(db_url)
    assert cli("--ingest", str(folder)).returncode == 0
    run = cli("--db", THUMBNAIL_SAVE_PATH=str(tmp_path / "thumbs"), RETRY_DELAY_SECONDS="3600")
    assert run.returncode == 1, run.stderr[-3000:]
    assert "Traceback" not in run.stderr
    engine = make_engine(db_url)
    with session_factory(engine)() as s:
        rows = {r[0]: r[1:] for r in s.execute(
            select(MediaFile.FileName, MediaItems.Status, MediaItems.LastError, MediaItems.Attempts,
                   MediaItems.FaceCount).join(MediaItems, MediaItems.MediaFileId == MediaFile.Id))}
        embedded = s.scalar(select(Faces.Id).where(Faces.Embedding.is_not(None), Faces.FrameNumber.is_not(None))
                            .limit(1))
        portrait = s.execute(select(MediaMeta.Width, MediaMeta.Height).join(MediaFile, MediaFile.Id == MediaMeta.MediaFileId)
                             .where(MediaFile.FileName == "portrait.mp4")).one()
    engine.dispose()
    assert rows["good.webm"][0] == "done" and rows["good.webm"][3] >= 1 and embedded is not None
    assert rows["portrait.mp4"][0] == "done" and rows["portrait.mp4"][3] >= 1  # the face found upright
    assert tuple(portrait) == (360, 640)
    expected = {
        "cut.mp4": ("truncated video", False),
        "empty.mov": ("empty file (0 bytes)", True),
        "notes.mkv": ("not a video file", True),
        "voice.m4v": ("no video stream", True),
        "odd.avi": ("unsupported video codec", True),
    }
    for name, (reason, permanent) in expected.items():
        status, error, attempts, _ = rows[name]
        assert status == "failed" and reason in (error or ""), (name, error)
        # a permanent failure uses up every attempt at once; a cut copy is tried again later
        assert (attempts >= 3) == permanent, (name, attempts)


class StopAfter(StopFlag):
    """A stop request that arrives after `checks` looks at it (in the middle of a video)."""

    def __init__(self, checks: int):
        super().__init__()
        self.left = checks

    def is_set(self) -> bool:
        self.left -= 1
        if self.left < 0:
            self.set()
        return super().is_set()


def test_a_stop_in_the_middle_of_a_video_hands_it_back_whole(db_url, models, faces_dev, tmp_path):
    folder = tmp_path / "videos"
    folder.mkdir()
    write_clip(folder / "clip.mkv", clip_scenes(faces_dev), fps=5)
    engine = make_engine(db_url)
    sessions = session_factory(engine)
    settings = settings_for(db_url, tmp_path / "thumbs")
    ingest_folder(sessions, folder)
    stopped = detect_pending(sessions, models[0], settings, StopAfter(6), encoder=models[1])
    assert stopped.images == 0
    with sessions() as s:
        item = s.execute(select(MediaItems.Status, MediaItems.Attempts, MediaItems.LockedBy)).one()
        assert tuple(item) == ("pending", 0, None)  # handed back, no attempt used
        assert s.scalar(select(func.count()).select_from(Faces)) == 0
    assert not list((tmp_path / "thumbs").rglob("*.jpg"))  # no thumbnail of a face never stored
    done = detect_pending(sessions, models[0], settings, encoder=models[1])
    assert done.images == 1 and done.failed == 0 and done.faces >= 6
    engine.dispose()
