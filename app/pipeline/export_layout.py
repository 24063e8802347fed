"""What an export folder holds, as pure functions: safe names, each chip's metadata (seed
000's fields), the summary (seeds 001 / 004), the index page and the contact sheets.

Names come from users and from other applications' file names, so every name written to
disk goes through `slug` / `safe_file_name`: no path separators, no `..`, no control or
reserved characters. Person folders start with `person_<id>`, so two persons with the
same name never collide and no folder is a reserved device name (CON, NUL, ...).
"""
from __future__ import annotations

import html
import io
import re
import unicodedata
from dataclasses import dataclass

from PIL import Image

from app.types import Box

NOISE = "noise"
SHEET = "contact_sheet.jpg"
SLUG_MAX = 40
FILE_NAME_MAX = 120
SHEET_TILE, SHEET_COLUMNS, SHEET_MAX = 96, 10, 60


def slug(name: str | None) -> str:
    """Lower-case letters and digits of any script, runs of anything else as one '-'."""
    if not name:
        return ""
    text = unicodedata.normalize("NFKC", name).lower()
    text = "".join(ch if ch.isalnum() else "-" for ch in text)
    return re.sub(r"-+", "-", text).strip("-")[:SLUG_MAX].strip("-")


def person_folder(person_id: int, name: str | None) -> str:
    s = slug(name)
    return f"person_{person_id}_{s}" if s else f"person_{person_id}"


def safe_file_name(name: str) -> str:
    """A file name that is one plain name on every system: letters, digits, '.', '-', '_'
    kept, anything else '_'; no leading dot; the extension kept when shortened."""
    text = unicodedata.normalize("NFKC", name)
    text = "".join(ch if ch.isalnum() or ch in ".-_" else "_" for ch in text).lstrip(".") or "file"
    if len(text) > FILE_NAME_MAX:
        stem, dot, ext = text.rpartition(".")
        ext = ext[:10] if dot else ""
        text = (stem if dot else text)[:FILE_NAME_MAX - len(ext) - 1] + ("." + ext if ext else "")
    return text


def photo_name(media_file_id: int, file_name: str) -> str:
    return f"{media_file_id}_{safe_file_name(file_name)}"


def cluster_id(person_id: int | None) -> str:
    """Seed 000's clusterId: person_<id>, or noise for a face without a person."""
    return f"person_{person_id}" if person_id is not None else NOISE


def face_bounds(box: Box | None) -> dict | None:
    """Seed 000's face_bounds: the box in whole original pixels."""
    return {"x": round(box.x), "y": round(box.y), "w": round(box.w), "h": round(box.h)} if box else None


def video_timestamp(ms: int) -> str:
    """A time in a video as seed 000 writes it: HH:MM:SS.mmm."""
    seconds, milli = divmod(max(0, int(ms)), 1000)
    minutes, seconds = divmod(seconds, 60)
    return f"{minutes // 60:02d}:{minutes % 60:02d}:{seconds:02d}.{milli:03d}"


def chip_name(face_id: int) -> str:
    return f"face_{face_id}"


@dataclass(frozen=True)
class ChipInfo:
    """One face as its metadata JSON describes it."""
    face_id: int
    person_id: int | None
    person_name: str | None
    folder: str
    media_file_id: int
    source_file: str
    box: dict
    confidence: float | None
    quality: float | None
    assigned_by: str | None
    timestamp: str | None
    timestamp_source: str | None  # exif | video (the container's creation time) | file
    device_id: str | None
    gps: dict | None
    camera: dict | None
    cover: bool = False
    best: bool = False
    frame_number: int | None = None  # a video's face: its frame and time (ms)
    frame_time_ms: int | None = None


def topics(c: ChipInfo) -> list[str]:
    out = ["face_detected"]
    if c.person_id is None:
        out.append("noise")
    elif c.assigned_by in ("matched", "clustered"):
        out.append(c.assigned_by)
    else:
        out.append("confirmed")  # a user (or another application) put it there
    if c.person_name:
        out.append("named")
    if c.cover:
        out.append("cover")
    if c.best:
        out.append("best")
    return out


def chip_record(c: ChipInfo, author: str) -> dict:
    name = chip_name(c.face_id)
    return {
        "file": f"{c.folder}/faces/{name}.jpg",
        "type": "video" if c.frame_number is not None else "image",
        "name": name,
        "author": author,
        "timestamp": c.timestamp,
        "timestampSource": c.timestamp_source,
        "deviceId": c.device_id,
        "clusterId": cluster_id(c.person_id),
        "personId": c.person_id,
        "personName": c.person_name,
        "faceId": c.face_id,
        "mediaFileId": c.media_file_id,
        "sourceFile": c.source_file,
        "face_bounds": c.box,
        "confidence": None if c.confidence is None else round(c.confidence, 4),
        "quality": None if c.quality is None else round(c.quality, 4),
        "gps": c.gps,
        "camera": c.camera,
        "topics": topics(c),
        **({"frameNumber": c.frame_number, "videoTimestamp": video_timestamp(c.frame_time_ms or 0)}
           if c.frame_number is not None else {}),
    }


def index_html(persons: list[dict], totals: dict) -> str:
    """A page that opens from disk: every person's contact sheet with name and counts."""
    cards = []
    for p in persons:
        title = html.escape(p["name"] or f"Person {p['id']}")
        folder = html.escape(p["folder"], quote=True)
        cards.append(
            f'<figure><a href="{folder}/"><img src="{folder}/{SHEET}" alt="{title}" loading="lazy"></a>'
            f'<figcaption><b>{title}</b> &middot; #{p["id"]} &middot; {p["faces"]} faces in '
            f'{p["photos"]} photos</figcaption></figure>'
        )
    return (
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>Persons</title>\n"
        "<style>body{font-family:sans-serif;margin:1em}figure{margin:0 0 1.5em}"
        "img{max-width:100%;border:1px solid #ccc}</style></head><body>\n"
        f"<h1>{totals['persons']} persons</h1>\n<p>{totals['faces']} faces in {totals['photos']} photos; "
        f"{totals['noise']} faces without a person (folder <a href=\"{NOISE}/\">{NOISE}</a>).</p>\n"
        + "\n".join(cards) + "\n</body></html>\n"
    )


def contact_sheet(chips: list[bytes | None]) -> bytes:
    """A grid of face chips (JPEG bytes, in order; None: left out), SHEET_MAX at most."""
    images = []
    for data in chips:
        if data is None:
            continue
        try:
            with Image.open(io.BytesIO(data)) as im:
                images.append(im.convert("RGB").resize((SHEET_TILE, SHEET_TILE), Image.Resampling.LANCZOS))
        except (OSError, ValueError):
            continue
        if len(images) >= SHEET_MAX:
            break
    columns = max(1, min(SHEET_COLUMNS, len(images)))
    rows = max(1, -(-len(images) // columns))
    sheet = Image.new("RGB", (columns * SHEET_TILE, rows * SHEET_TILE), (255, 255, 255))
    for i, im in enumerate(images):
        sheet.paste(im, ((i % columns) * SHEET_TILE, (i // columns) * SHEET_TILE))
    buf = io.BytesIO()
    sheet.save(buf, format="JPEG", quality=85)
    return buf.getvalue()
