"""The published event of one media file: seed 000's "derived asset" (the face detection
result of an original photo or video), as JSON.

Pure: facts in, a dict out. The original is named by its SHA-256 (`parentId`), so a
provenance service can tie the result to the asset it registered for that file.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from app.pipeline.export_layout import cluster_id, face_bounds, video_timestamp
from app.types import Box

if TYPE_CHECKING:  # the repository's row types; nothing here touches the database
    from app.repositories.outbox import EventFace, MediaFacts

KIND = "face-detection-result"


def _face(f: EventFace, media_type: str) -> dict:
    out = {
        "faceId": f.face_id,
        "personId": f.person_id,
        "personName": f.person_name,
        "clusterId": cluster_id(f.person_id),
        "face_bounds": face_bounds(Box.parse(f.bounding_box)),
        "confidence": None if f.confidence is None else round(f.confidence, 4),
        "quality": None if f.quality is None else round(f.quality, 4),
        "usable": f.is_usable,
        "assignedBy": f.assigned_by,
        "type": media_type,
    }
    if f.frame_number is not None:
        out.update(frameNumber=f.frame_number, videoTimestamp=video_timestamp(f.frame_time_ms or 0),
                   videoTimestampMs=f.frame_time_ms, track=f.track_number)
    return out


def build(event_id: int, key: str, media_file_id: int, facts: MediaFacts | None, faces: list[EventFace],
          sha256: str | None, problem: str | None, author: str) -> dict:
    """The event's body. `facts` None: the media file was deleted (the event says so, with
    no faces). `problem`: why the file could not be hashed (then parentId is null)."""
    media_type = "video" if facts is not None and facts.media_type == "video" else "image"
    source: dict = {"mediaFileId": media_file_id, "deleted": facts is None}
    if facts is not None:
        source.update(file=facts.file_path, fileName=facts.file_name, type=media_type, sha256=sha256,
                      width=facts.width, height=facts.height, timestamp=facts.taken_at, deviceId=facts.device_id,
                      gps=({"latitude": facts.latitude, "longitude": facts.longitude}
                           if facts.latitude is not None and facts.longitude is not None else None))
        if media_type == "video":
            source["video"] = {"durationMs": facts.duration_ms, "codec": facts.codec, "frameRate": facts.frame_rate}
        if problem:
            source["problem"] = problem
    persons = sorted({(f.person_id, f.person_name, bool(f.person_hidden)) for f in faces if f.person_id is not None},
                     key=lambda p: p[0])
    return {
        "eventId": event_id,
        "idempotencyKey": key,
        "kind": KIND,
        "author": author,
        "parentId": f"sha256:{sha256}" if sha256 else None,
        "source": source,
        "faces": [_face(f, media_type) for f in faces],
        "persons": [{"personId": p, "personName": n, "clusterId": cluster_id(p), "hidden": h} for p, n, h in persons],
        "topics": ["face_detected", "clustered"] if persons else ["face_detected"],
    }
