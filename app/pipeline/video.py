"""Video files: their facts, and frames sampled at an interval, decoded with PyAV (its
wheel brings FFmpeg and the codecs), or exactly why not.

Frames are decoded one after another and only the sampled ones become RGB arrays, so
memory stays that of a few frames whatever the video's length. Frame numbers count the
frames in presentation order from 0; times are milliseconds from the video's start.
"""
from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass
from datetime import datetime
from fractions import Fraction
from pathlib import Path
from typing import Iterator

import numpy as np

from app.pipeline.decode import DecodeError, check_file

log = logging.getLogger("app.detection")

VIDEO_EXTENSIONS = frozenset({".mp4", ".mov", ".m4v", ".mkv", ".avi", ".webm"})
# A video whose frames end this much before its stated length is cut short (a file still
# being copied, or a broken download): it fails and is tried again later.
TRUNCATION_SLACK_MS = 2000
# Sampled frames further apart than this are reached by seeking (long videos, whose
# interval grows to keep within VIDEO_MAX_FRAMES), not by decoding every frame between.
SEEK_MIN_MS = 2000
# Frames before a sample that are all decoded (the decoder returns frames a few late).
NEAR_FRAMES = 8


def is_video(path: str | Path) -> bool:
    return Path(path).suffix.lower() in VIDEO_EXTENSIONS


def container_of(head: bytes) -> str | None:
    """The container a file's first 12 bytes announce (MP4/QuickTime, Matroska/WebM, AVI),
    or None: the one statement of what a video's bytes look like (the review page sniffs
    with it too)."""
    if head[4:8] in (b"ftyp", b"moov", b"mdat", b"wide", b"free", b"skip"):
        return "MP4/QuickTime"
    if head[:4] == b"\x1a\x45\xdf\xa3":
        return "Matroska/WebM"
    if head[:4] == b"RIFF" and head[8:12] == b"AVI ":
        return "AVI"
    return None


def container_kind(path: Path) -> str | None:
    """The container the file's first bytes announce, or None."""
    try:
        with path.open("rb") as f:
            return container_of(f.read(12))
    except OSError:
        return None


@dataclass(frozen=True)
class VideoInfo:
    width: int
    height: int
    duration_ms: int | None
    codec: str
    frame_rate: float | None
    created: datetime | None  # the container's creation_time tag
    make: str | None = None  # the recording device, when the container says (phones do)
    model: str | None = None


@dataclass(frozen=True)
class Frame:
    number: int
    time_ms: int
    rgb: np.ndarray


def _created(tags: dict) -> datetime | None:
    raw = tags.get("creation_time") or tags.get("com.apple.quicktime.creationdate")
    if not raw:
        return None
    try:
        return datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        log.warning("video creation time unreadable: %r", raw)
        return None


def upright(frame) -> np.ndarray:
    """A decoded frame as RGB, turned as it is meant to be shown: phones store portrait
    video sideways with a rotation in the container (as photos carry EXIF orientation)."""
    rgb = frame.to_ndarray(format="rgb24")
    turns = round((getattr(frame, "rotation", 0) or 0) / 90) % 4  # degrees counter-clockwise
    return np.ascontiguousarray(np.rot90(rgb, turns)) if turns else rgb


def _tag(tags: dict, *names: str) -> str | None:
    for name in names:
        value = (tags.get(name) or "").strip()
        if value:
            return value[:100]
    return None


def _clock(text: str | None) -> float | None:
    """'HH:MM:SS.fraction' (Matroska's DURATION tag) in seconds."""
    try:
        h, m, sec = (text or "").strip().split(":")
        return int(h) * 3600 + int(m) * 60 + float(sec)
    except ValueError:
        return None


def _seconds(value, base: Fraction | None) -> float | None:
    if value is None or base is None:
        return None
    return float(value * base)


class VideoReader:
    """`with VideoReader(path, max_pixels) as video:` then `video.info` and `video.sample(...)`.
    Every failure is a DecodeError whose message is stored on the media item."""

    def __init__(self, path: Path, max_pixels: int):
        self.path = path
        self.max_pixels = max_pixels
        self.container = None
        self.stream = None
        self.info: VideoInfo | None = None
        self.decoded = 0  # frames decoded so far (sampled or not)

    def __enter__(self) -> "VideoReader":
        import av

        path = self.path
        check_file(path)
        try:
            self.container = av.open(str(path), metadata_errors="ignore")
        except av.FFmpegError as exc:
            if container_kind(path) is None:
                raise DecodeError(f"not a video file (unrecognised format): {exc}", permanent=True) from None
            # a known container that does not open: cut short (still being copied?) or broken
            raise DecodeError(f"corrupt or truncated {container_kind(path)} video: {exc}") from None
        try:
            streams = self.container.streams.video
            if not streams:
                kinds = sorted({s.type for s in self.container.streams})
                raise DecodeError(f"no video stream (the file holds {', '.join(kinds) or 'no streams'}: "
                                  "an audio-only file?)", permanent=True)
            stream = streams[0]
            ctx = stream.codec_context
            if ctx is None or not ctx.name:
                raise DecodeError("unsupported video codec (no decoder for it in this FFmpeg build)",
                                  permanent=True)
            stream.thread_type = "AUTO"
            w, h = ctx.width, ctx.height
            if w * h > self.max_pixels:
                raise DecodeError(f"video frames too large: {w}x{h} = {w * h:,} pixels, limit "
                                  f"{self.max_pixels:,} (MAX_IMAGE_PIXELS)", permanent=True)
            # the video stream's own length: the container's covers every track (audio may run
            # on after the last frame); Matroska keeps it in the track's DURATION tag
            duration = _seconds(stream.duration, stream.time_base)
            if duration is None:
                duration = _clock(dict(stream.metadata).get("DURATION"))
            rate = stream.average_rate or stream.guessed_rate
            self.stream = stream
            tags = dict(self.container.metadata)
            self.info = VideoInfo(w, h, None if duration is None else round(duration * 1000), ctx.name,
                                  float(rate) if rate else None, _created(tags),
                                  _tag(tags, "com.apple.quicktime.make", "make"),
                                  _tag(tags, "com.apple.quicktime.model", "model"))
        except BaseException:
            self.container.close()
            raise
        return self

    def __exit__(self, *exc) -> None:
        if self.container is not None:
            self.container.close()

    def interval_ms(self, interval_seconds: float, max_frames: int) -> float:
        """The sampling interval: as set, or longer so a long video stays within max_frames."""
        interval = interval_seconds * 1000
        if self.info and self.info.duration_ms:
            interval = max(interval, self.info.duration_ms / max_frames)
        return interval

    def _frames(self) -> Iterator:
        import av

        try:
            yield from self.container.decode(self.stream)
        except av.FFmpegError as exc:
            raise DecodeError(f"corrupt or truncated video: {exc}") from None

    def _ms(self, frame) -> float | None:
        """A decoded frame's time from the video's start in ms; None without a timestamp."""
        base = self.stream.time_base
        if frame.pts is None or base is None:
            return None
        return float((frame.pts - (self.stream.start_time or 0)) * base) * 1000

    def _seek(self, ms: float) -> None:
        """Go to the key frame at or before `ms`: the next frames decoded come from there."""
        self.container.seek((self.stream.start_time or 0) + int(ms / 1000 / self.stream.time_base),
                            stream=self.stream, backward=True)

    def sample(self, interval_seconds: float, max_frames: int) -> Iterator[Frame]:
        """The frames at 0, interval, 2 x interval, ... (the first frame at or after each
        time), at most `max_frames`, as RGB arrays. Frame numbers come from the frames'
        timestamps (frame rate x time), else from counting. When the next time is more than
        SEEK_MIN_MS ahead, the reader seeks to the key frame before it instead of decoding
        every frame in between, unless key frames turn out to be further apart than that
        (then seeking would decode frames twice)."""
        interval = self.interval_ms(interval_seconds, max_frames)
        fps = self.info.frame_rate or 25.0
        duration = self.info.duration_ms
        target = 0.0
        taken = counted = 0
        last_ms = None
        seekable = duration is not None and self.stream.time_base is not None and interval > SEEK_MIN_MS
        seeked_from = None  # where the last seek left off, until the first frame after it
        skipping = False
        # frame threading hands frames out up to a frame per thread late
        threads = self.stream.codec_context.thread_count or os.cpu_count() or 1
        near_ms = (NEAR_FRAMES + threads) * 1000 / fps
        while True:
            sought = False
            for frame in self._frames():
                self.decoded += 1
                ms = self._ms(frame)
                if ms is not None:
                    number = round(ms * fps / 1000)
                else:
                    ms, number = counted * 1000 / fps, counted
                counted += 1
                if seeked_from is not None:  # the first frame after a seek
                    if ms <= seeked_from:  # key frames are further apart than the gap: stop seeking
                        seekable = False
                    seeked_from = None
                last_ms = ms if last_ms is None else max(last_ms, ms)
                # Far from the next sample, frames no other frame refers to need no decoding
                # (B-frames, mostly): skipping them changes no sampled frame. Near it (the
                # decoder hands frames out a few late), every frame is decoded again.
                far = target - ms > near_ms
                if far != skipping:
                    self.stream.codec_context.skip_frame = "NONREF" if far else "DEFAULT"
                    skipping = far
                if ms + 0.5 < target:
                    continue
                if frame.width * frame.height > self.max_pixels:
                    raise DecodeError(f"video frame {number} too large: {frame.width}x{frame.height}",
                                      permanent=True)
                yield Frame(number, max(0, round(ms)), upright(frame))
                taken += 1
                if taken >= max_frames:
                    return
                target = math.floor(ms / interval + 1e-9) * interval + interval
                # never seek past the stated end: the last frames must be decoded to tell a
                # whole video from a cut one
                if seekable and target - ms > SEEK_MIN_MS and target < duration - TRUNCATION_SLACK_MS:
                    self._seek(target)
                    seeked_from, sought = ms, True
                    break
            if not sought:
                break  # the end of the video
        if last_ms is None:
            raise DecodeError("no frame could be decoded (corrupt or truncated video)")
        if duration is not None and last_ms < duration - max(TRUNCATION_SLACK_MS, 3 * 1000 / fps):
            raise DecodeError(f"truncated video: its frames end at {last_ms / 1000:.1f} s of the "
                              f"{duration / 1000:.1f} s it states")


def ahead(frames: Iterator[Frame], depth: int = 2) -> Iterator[Frame]:
    """The same frames, decoded on a helper thread up to `depth` ahead of the caller (FFmpeg
    releases the GIL), so decoding overlaps the models; an error is raised where the frame
    would have come. Closing the generator stops the helper."""
    import queue
    import threading

    box: queue.Queue = queue.Queue(maxsize=depth)
    done = threading.Event()
    END = object()

    def put(value) -> bool:
        while not done.is_set():
            try:
                box.put(value, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def run() -> None:
        try:
            for frame in frames:
                if not put(frame):
                    return
            put(END)
        except BaseException as exc:  # handed to the caller
            put(exc)

    helper = threading.Thread(target=run, name="video-decode", daemon=True)
    helper.start()
    try:
        while True:
            got = box.get()
            if got is END:
                return
            if isinstance(got, BaseException):
                raise got
            yield got
    finally:
        done.set()
        helper.join()


def frame_at(path: Path, time_ms: int, max_pixels: int) -> np.ndarray:
    """The frame shown at `time_ms` (the embedding stage and --export cut faces from it),
    found by seeking to the key frame before it and decoding forward."""
    import av

    with VideoReader(path, max_pixels) as video:
        if video.stream.time_base is not None:
            try:
                video._seek(time_ms)
            except av.FFmpegError:
                pass  # decode from the start instead
        best = None
        fps = video.info.frame_rate or 25.0
        from_start = False
        for frame in video._frames():
            ms = video._ms(frame)
            if ms is None:
                raise DecodeError("the video's frames carry no timestamps: cannot find a frame by time")
            if best is None and ms > time_ms + 1500 / fps and not from_start:
                # the seek landed after the frame (no index, imprecise seeking): from the start
                video._seek(0)
                from_start = True
                continue
            if ms + 0.5 >= time_ms:
                return upright(frame)
            best = frame
        if best is None:
            raise DecodeError(f"no frame at {time_ms} ms (corrupt or truncated video)")
        return upright(best)
