"""The published event's body (app/pipeline/derived_asset.py) and re-detection of a video
against its stored faces (app/pipeline/reconcile.py)."""
from app.pipeline import derived_asset
from app.pipeline.reconcile import StoredFace, reconcile
from app.repositories.outbox import EventFace, MediaFacts
from app.types import Box

BOX = '{"x": 10.4, "y": 20.6, "w": 50, "h": 60}'


def facts(media_type=None) -> MediaFacts:
    return MediaFacts(7, "/p/clip.mp4", "clip.mp4", media_type, 640, 360, "2024-01-15T13:24:00+00:00", "AXIS-W120",
                      None, None, 12_500 if media_type else None, "h264" if media_type else None,
                      25.0 if media_type else None)


def test_a_video_event_names_its_parent_frames_and_persons():
    faces = [EventFace(1, 3, "Ann", BOX, 0.991234, 0.5, True, "clustered", 720, 24_000, 0),
             EventFace(2, None, None, BOX, 0.9, None, False, None, 750, 25_000, 1)]
    body = derived_asset.build(5, "k1", 7, facts("video"), faces, "ab" * 32, None, "me")
    assert body["parentId"] == "sha256:" + "ab" * 32 and body["idempotencyKey"] == "k1"
    assert body["source"]["type"] == "video" and body["source"]["video"] == {
        "durationMs": 12_500, "codec": "h264", "frameRate": 25.0}
    first = body["faces"][0]
    assert first["frameNumber"] == 720 and first["videoTimestamp"] == "00:00:24.000" and first["track"] == 0
    assert first["face_bounds"] == {"x": 10, "y": 21, "w": 50, "h": 60} and first["confidence"] == 0.9912
    assert body["faces"][1]["clusterId"] == "noise"
    assert body["persons"] == [{"personId": 3, "personName": "Ann", "clusterId": "person_3", "hidden": False}]


def test_a_photo_event_and_a_deleted_or_unreadable_file():
    body = derived_asset.build(5, "k", 7, facts(), [EventFace(1, None, None, BOX, 0.9, 0.4, True, None, None, None,
                                                             None)], None, "cannot read the file: gone", "me")
    assert body["parentId"] is None and body["source"]["problem"] == "cannot read the file: gone"
    assert "frameNumber" not in body["faces"][0] and body["faces"][0]["type"] == "image"
    gone = derived_asset.build(6, "k2", 9, None, [], None, None, "me")
    assert gone["source"] == {"mediaFileId": 9, "deleted": True} and gone["faces"] == []


def test_a_users_face_in_a_video_is_the_same_face_only_in_its_own_frame():
    box = Box(100, 100, 50, 50)
    kept = StoredFace(1, box, "t1", set_by_user=True, person_id=4, frame=30)
    auto = StoredFace(2, box, "t2", set_by_user=False, frame=30)
    plan = reconcile([kept, auto], ["f30", "f60"], [box, box], frames=[30, 60])
    assert plan.keep == [kept] and plan.delete == [auto]
    assert plan.skip == ["f30"] and plan.insert == ["f60"]  # same place, another frame: a new face
