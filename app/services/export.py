"""--export: the persons as folders on disk, for people and for other tools.

    DIR/index.html, summary.json
    DIR/person_<id>[_<name>]/faces/face_<faceId>.jpg + .json   (chip and its metadata)
    DIR/person_<id>[_<name>]/photos/<mediaFileId>_<file name>  (link to / copy of the photo)
    DIR/person_<id>[_<name>]/best/<rank>_<mediaFileId>_<file name>
    DIR/person_<id>[_<name>]/contact_sheet.jpg
    DIR/noise/faces/face_<faceId>.jpg + .json                  (faces without a person)

Visible persons only, as the user left them (names, merges, hidden persons). The database
is only read, except for quality scores of faces stored without one. The folder is kept in
step by app/storage/export_tree.py: a re-export writes only what changed, and again
whatever is no longer as it left it (deleted or edited files).
"""
from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import time
from collections import OrderedDict, defaultdict
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Sequence

from sqlalchemy.orm import Session, sessionmaker

from app.config import Settings
from app.errors import RequestError
from app.pipeline import export_layout as layout
from app.pipeline.decode import DecodeError, Decoded, load
from app.pipeline.thumbnail import thumbnail_jpeg
from app.pipeline.video import frame_at
from app.repositories import export as erepo
from app.repositories import persons as prepo
from app.repositories.export import ExportFace
from app.services import best_photos
from app.services.scores import fill_missing
from app.storage.export_tree import Entry, ExportTree, Skip, SyncReport, copy_of, locked, write_bytes
from app.types import Box

log = logging.getLogger("app.export")
SCHEMA_VERSION = 1


@dataclass
class ExportReport:
    persons: int = 0
    faces: int = 0
    noise: int = 0
    photos: int = 0
    sync: SyncReport = field(default_factory=SyncReport)
    seconds: float = 0.0


def _json_bytes(value) -> bytes:
    return (json.dumps(value, indent=2, ensure_ascii=False) + "\n").encode("utf-8")


def _hash_key(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


class _Photos:
    """Facts about each source photo, looked up once: file time, and the decoded pixels
    (a few at a time: faces of one photo come together)."""

    def __init__(self, max_pixels: int):
        self.max_pixels = max_pixels
        self.stats: dict[str, os.stat_result | None] = {}
        self.decoded: OrderedDict[tuple[str, int | None, int | None], Decoded | str] = OrderedDict()

    def stat(self, path: str) -> os.stat_result | None:
        if path not in self.stats:
            try:
                self.stats[path] = os.stat(path)
            except OSError:
                self.stats[path] = None
        return self.stats[path]

    def version(self, path: str) -> str:
        """Changes when the file does: its modification time and size."""
        st = self.stat(path)
        return f"{st.st_mtime_ns}:{st.st_size}" if st else "missing"

    def file_time(self, path: str) -> str | None:
        st = self.stat(path)
        if st is None:
            return None
        return datetime.fromtimestamp(st.st_mtime, timezone.utc).isoformat().replace("+00:00", "Z")

    def image(self, path: str, at_least: int | None, frame_time_ms: int | None = None) -> Decoded:
        """The photo, or the video's frame at `frame_time_ms`."""
        key = (path, at_least, frame_time_ms)
        if key not in self.decoded:
            try:
                if frame_time_ms is not None:
                    rgb = frame_at(Path(path), frame_time_ms, self.max_pixels)
                    self.decoded[key] = Decoded(rgb, rgb.shape[1], rgb.shape[0])
                else:
                    self.decoded[key] = load(Path(path), self.max_pixels, at_least)
            except DecodeError as exc:
                self.decoded[key] = str(exc)
            while len(self.decoded) > 4:
                self.decoded.popitem(last=False)
        got = self.decoded[key]
        if isinstance(got, str):
            raise Skip(f"{path}: {got}")
        return got


class _Plan:
    def __init__(self, settings: Settings, copy: bool, photos: _Photos):
        self.settings, self.copy, self.photos = settings, copy, photos
        self.wanted: dict[str, Entry] = {}
        self.sheets: list[tuple[str, list[str]]] = []  # contact sheet path, its chip paths

    def _at_least(self, face: ExportFace, box: Box) -> int | None:
        """The smallest decode that still gives the chip its full size (JPEG draft scale)."""
        if not face.width or not face.height:
            return None
        crop = max(box.w, box.h) * (1 + 2 * self.settings.export_chip_margin)
        if crop <= 0:
            return None
        return math.ceil(max(face.width, face.height) * self.settings.export_chip_size / crop)

    def chip(self, folder: str, face: ExportFace) -> str | None:
        box = face.box
        if box is None or box.w <= 0 or box.h <= 0:
            return None
        key = (f"chip:{face.face_id}:{face.bounding_box}:{face.frame_time_ms}:{self.settings.export_chip_size}:"
               f"{self.settings.export_chip_margin}:{self.photos.version(face.file_path)}")
        at_least = self._at_least(face, box)

        def write(path: Path) -> None:
            decoded = self.photos.image(face.file_path, at_least, face.frame_time_ms)
            scale = decoded.rgb.shape[1] / decoded.width
            small = Box(box.x * scale, box.y * scale, box.w * scale, box.h * scale)
            path.write_bytes(thumbnail_jpeg(decoded.rgb, small, self.settings.export_chip_size,
                                            self.settings.export_chip_margin))

        path = f"{folder}/faces/{layout.chip_name(face.face_id)}.jpg"
        self.wanted[path] = Entry(key, write, movable=True)
        return path

    def data(self, path: str, value) -> None:
        """A text file (str) or a JSON document (anything else)."""
        data = value.encode("utf-8") if isinstance(value, str) else _json_bytes(value)
        self.wanted[path] = Entry(_hash_key(data), write_bytes(data))

    def photo(self, path: str, source: str) -> None:
        if self.copy:
            self.wanted[path] = Entry(f"copy:{source}:{self.photos.version(source)}", copy_of(source))
        else:
            target = os.path.abspath(source)
            self.wanted[path] = Entry(f"link:{target}", link_to=target)


def _chip_info(face: ExportFace, folder: str, person_name: str | None, photos: _Photos) -> layout.ChipInfo:
    recorded = "video" if face.media_type == "video" else "exif"  # a video's creation time, or the photo's EXIF
    when, source = (face.taken_at, recorded) if face.taken_at else (photos.file_time(face.file_path), "file")
    gps = None
    if face.latitude is not None and face.longitude is not None:
        gps = {"latitude": face.latitude, "longitude": face.longitude, "altitude": face.altitude}
    camera = {"make": face.camera_make, "model": face.camera_model} if (face.camera_make or face.camera_model) else None
    return layout.ChipInfo(face.face_id, face.person_id, person_name, folder, face.media_file_id, face.file_path,
                           layout.face_bounds(face.box), face.confidence, face.quality, face.assigned_by, when,
                           source if when else None, face.device_id, gps, camera,
                           frame_number=face.frame_number, frame_time_ms=face.frame_time_ms)


def export(sessions: sessionmaker[Session], settings: Settings, out_dir: Path,
           person_ids: Sequence[int] | None = None, copy: bool = False) -> ExportReport:
    """Into `out_dir`, one export at a time (a second one into the same folder stops with
    one line). `person_ids`: only these persons, into a new folder or one holding an
    earlier --persons export (refused where every person was exported: it would delete
    the others)."""
    started = time.perf_counter()
    with locked(out_dir):  # refuses a folder that is not an earlier export, before any work
        return _export(sessions, settings, ExportTree(out_dir, person_ids), out_dir, person_ids, copy, started)


def _export(sessions: sessionmaker[Session], settings: Settings, tree: ExportTree, out_dir: Path,
            person_ids: Sequence[int] | None, copy: bool, started: float) -> ExportReport:
    fill_missing(sessions, settings)
    photos = _Photos(settings.max_image_pixels)
    plan = _Plan(settings, copy, photos)
    report = ExportReport()
    summary_persons = []
    all_photos: set[int] = set()
    with sessions() as session:
        persons = prepo.list_persons(session, show="visible", person_ids=person_ids)
        if person_ids is not None:
            missing = sorted(set(person_ids) - {p.id for p in persons})
            if missing:
                raise RequestError(f"--persons: no visible person with id {', '.join(map(str, missing))}")
        persons.sort(key=lambda p: p.id)
        by_person: dict[int, list[ExportFace]] = defaultdict(list)
        for face in erepo.faces_of_persons(session, [p.id for p in persons]):
            by_person[face.person_id].append(face)
        for person in persons:
            folder = layout.person_folder(person.id, person.name)
            faces = by_person.get(person.id, [])
            infos = {f.face_id: _chip_info(f, folder, person.name, photos) for f in faces}
            chosen = best_photos.choose(session, settings, person.id, faces)
            best_ids = {c.face_id for c in chosen}
            by_id = {f.face_id: f for f in faces}
            chips: dict[int, str] = {}
            for f in faces:
                info = replace(infos[f.face_id], cover=f.face_id == person.cover_face, best=f.face_id in best_ids)
                path = plan.chip(folder, f)
                if path is None:
                    continue
                chips[f.face_id] = path
                plan.data(path[:-4] + ".json", layout.chip_record(info, settings.export_author))
            for f in {f.media_file_id: f for f in faces}.values():
                plan.photo(f"{folder}/photos/{layout.photo_name(f.media_file_id, f.file_name)}", f.file_path)
            best_list = []
            for rank, c in enumerate(chosen, 1):
                f = by_id[c.face_id]
                name = f"{rank:02d}_{layout.photo_name(f.media_file_id, f.file_name)}"
                plan.photo(f"{folder}/best/{name}", f.file_path)
                best_list.append({"rank": rank, "faceId": f.face_id, "mediaFileId": f.media_file_id,
                                  "file": f"{folder}/best/{name}", "sourceFile": f.file_path,
                                  "score": round(c.score, 4), "timestamp": infos[f.face_id].timestamp})
            order = sorted(chips, key=lambda i: (i != person.cover_face, -(by_id[i].quality or 0.0), i))
            plan.sheets.append((f"{folder}/{layout.SHEET}", [chips[i] for i in order]))
            times = sorted((t for t in (i.timestamp for i in infos.values()) if t), key=_instant)
            media = {f.media_file_id for f in faces}
            all_photos |= media
            summary_persons.append({
                "id": person.id, "name": person.name, "folder": folder, "faces": len(faces), "photos": len(media),
                "cover": ({"faceId": person.cover_face, "file": chips.get(person.cover_face)}
                          if person.cover_face in chips else None),
                "best": best_list, "firstSeen": times[0] if times else None, "lastSeen": times[-1] if times else None,
                "contactSheet": f"{folder}/{layout.SHEET}",
            })
            report.faces += len(faces)
        noise = list(erepo.faces_without_person(session)) if person_ids is None else []
    for f in noise:
        path = plan.chip(layout.NOISE, f)
        if path is not None:
            plan.data(path[:-4] + ".json",
                      layout.chip_record(_chip_info(f, layout.NOISE, None, photos), settings.export_author))
        all_photos.add(f.media_file_id)
    report.persons, report.noise, report.photos = len(persons), len(noise), len(all_photos)
    _sheets(plan, out_dir)
    totals = {"photos": report.photos, "faces": report.faces + report.noise, "persons": report.persons,
              "noise": report.noise}
    plan.data("summary.json", {
        "version": SCHEMA_VERSION, "author": settings.export_author, "totals": totals,
        "settings": {"chipSize": settings.export_chip_size, "chipMargin": settings.export_chip_margin,
                     "bestN": settings.best_n, "photos": "copy" if copy else "link"},
        "persons": summary_persons, "noise": {"folder": layout.NOISE, "faces": report.noise},
    })
    plan.data("index.html", layout.index_html(summary_persons, totals))
    last = [0.0]

    def progress(done: int, total: int) -> None:
        now = time.perf_counter()
        if done == total or now - last[0] >= 10:
            last[0] = now
            log.info("export: %d / %d files written or moved", done, total)

    report.sync = tree.sync(plan.wanted, progress)
    for path, reason in report.sync.failed[:20]:
        log.warning("export: %s not written: %s", path, reason)
    report.seconds = time.perf_counter() - started
    log.info("export to %s: %d persons, %d faces, %d without a person; %d files kept, %d written, %d moved, "
             "%d deleted, %d failed, in %.1f s", out_dir, report.persons, report.faces, report.noise,
             report.sync.kept, len(report.sync.written), len(report.sync.moved), len(report.sync.deleted),
             len(report.sync.failed), report.seconds)
    return report


def _instant(stamp: str) -> datetime:
    """For ordering: an ISO time as UTC (a camera's local time without offset read as UTC)."""
    try:
        t = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    except ValueError:
        return datetime.min.replace(tzinfo=timezone.utc)
    return t if t.tzinfo else t.replace(tzinfo=timezone.utc)


def _sheets(plan: _Plan, root: Path) -> None:
    """Contact sheets read their chips from the folder once the chips are written, so
    they are planned with a key made of their chips' keys."""
    for path, chip_paths in plan.sheets:
        key = _hash_key("\n".join(plan.wanted[c].key for c in chip_paths).encode("utf-8") + b"|sheet-v1")

        def write(tmp: Path, chips=tuple(chip_paths)) -> None:
            data = []
            for c in chips:
                try:
                    data.append((root / c).read_bytes())
                except OSError:
                    data.append(None)
            tmp.write_bytes(layout.contact_sheet(data))

        plan.wanted[path] = Entry(key, write)
