"""Real video files made from dev photos with PyAV, for the video tests and bench/.

A clip is a list of scenes; each scene lasts some seconds and shows some photos at given
places on a grey canvas, drifting a few pixels per frame as a filmed face would.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image


@dataclass(frozen=True)
class Shot:
    photo: Path
    x: int  # top-left corner on the canvas
    y: int
    height: int  # the photo's height on the canvas, in pixels


@dataclass(frozen=True)
class Scene:
    seconds: float
    shots: list[Shot] = field(default_factory=list)


def _canvas(scene: Scene, size: tuple[int, int], t: int, cache: dict) -> np.ndarray:
    w, h = size
    canvas = Image.new("RGB", (w, h), (96, 96, 96))
    for shot in scene.shots:
        key = (shot.photo, shot.height)
        if key not in cache:
            with Image.open(shot.photo) as im:
                im = im.convert("RGB")
                cache[key] = im.resize((round(im.width * shot.height / im.height), shot.height), Image.BILINEAR)
        drift = (t % 20) - 10  # a few pixels to and fro
        canvas.paste(cache[key], (shot.x + drift, shot.y + drift // 2))
    return np.asarray(canvas)


def write_clip(path: Path, scenes: list[Scene], size: tuple[int, int] = (640, 360), fps: int = 10,
               codec: str = "libx264", faststart: bool = False, grain: float = 0.0, keyframes: int | None = None,
               created: str | None = None) -> int:
    """Encode the scenes into `path` (container from its extension); returns the frame count.
    `faststart`: an .mp4's index goes first, so a cut-off copy still opens. `grain`: the
    standard deviation of noise added to every frame, as a camera sensor's (a still,
    noiseless picture compresses and decodes far faster than filmed video). `keyframes`: a
    key frame every this many frames (the encoder's default otherwise: 250 for x264).
    `created`: the container's creation_time tag (ISO 8601), as cameras write it."""
    import av

    cache: dict = {}
    frames = 0
    with av.open(str(path), "w", options={"movflags": "faststart"} if faststart else {}) as out:
        if created:
            out.metadata["creation_time"] = created
        stream = out.add_stream(codec, rate=fps)
        stream.width, stream.height = size
        stream.pix_fmt = "yuv420p"
        if keyframes:
            stream.codec_context.gop_size = keyframes
        if codec == "libx264":
            stream.options = {"preset": "veryfast", "crf": "21"}  # a camera's quality, not a stream's
        rng = np.random.default_rng(0)
        noise = (rng.normal(0, grain, (8, size[1], size[0], 3)).astype(np.int16) if grain else None)
        for scene in scenes:
            for t in range(round(scene.seconds * fps)):
                pixels = _canvas(scene, size, t, cache)
                if noise is not None:
                    pixels = np.clip(pixels + noise[frames % len(noise)], 0, 255).astype(np.uint8)
                frame = av.VideoFrame.from_ndarray(pixels, format="rgb24")
                for packet in stream.encode(frame):
                    out.mux(packet)
                frames += 1
        for packet in stream.encode():
            out.mux(packet)
    return frames


_IDENTITY = struct.pack(">9I", 0x10000, 0, 0, 0, 0x10000, 0, 0, 0, 0x40000000)
_TURNED = struct.pack(">9I", 0, 0x10000, 0, 0xFFFF0000, 0, 0, 0, 0, 0x40000000)  # shown turned 90 deg clockwise


def write_portrait(path: Path, scenes: list[Scene], size: tuple[int, int] = (360, 640), fps: int = 10) -> None:
    """An .mp4 as a phone films upright: the frames stored sideways (`size` is the upright
    size) and the track's matrix saying to turn them 90 degrees clockwise for display."""
    w, h = size
    cache: dict = {}
    import av

    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=fps)
        stream.width, stream.height = h, w
        stream.pix_fmt = "yuv420p"
        for scene in scenes:
            for t in range(round(scene.seconds * fps)):
                sideways = np.ascontiguousarray(np.rot90(_canvas(scene, size, t, cache), 1))
                for packet in stream.encode(av.VideoFrame.from_ndarray(sideways, format="rgb24")):
                    out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    data = path.read_bytes()
    at = data.index(_IDENTITY, data.index(b"tkhd"))
    path.write_bytes(data[:at] + _TURNED + data[at + len(_IDENTITY):])


def write_audio_only(path: Path, seconds: float = 1.0) -> None:
    """An .mp4 holding one AAC audio stream and no video."""
    import av

    rate = 44100
    with av.open(str(path), "w") as out:
        stream = out.add_stream("aac", rate=rate)
        samples = np.zeros((1, 1024), np.float32)
        for n in range(int(seconds * rate / 1024)):
            frame = av.AudioFrame.from_ndarray(samples, format="fltp", layout="mono")
            frame.sample_rate = rate
            frame.pts = n * 1024
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
