"""Video files (app/pipeline/video.py) made here with PyAV: facts, sampling, frame lookup,
and the reasons a video cannot be used."""
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from app.pipeline.decode import DecodeError
from app.pipeline.export_layout import video_timestamp
from app.pipeline import video as video_module
from app.pipeline.video import VideoReader, container_kind, frame_at, is_video
from tests.video_clips import Scene, Shot, write_audio_only, write_clip, write_portrait

MAX = 100_000_000


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("video") / "grey.mp4"
    assert write_clip(path, [Scene(6.0)], size=(320, 240), fps=25) == 150
    return path


def test_facts_and_sampling(clip):
    with VideoReader(clip, MAX) as video:
        info = video.info
        assert (info.width, info.height, info.duration_ms, info.codec, info.frame_rate) == (320, 240, 6000, "h264", 25.0)
        frames = list(video.sample(1.0, 100))
    assert [(f.number, f.time_ms) for f in frames] == [(25 * k, 1000 * k) for k in range(6)]
    assert all(f.rgb.shape == (240, 320, 3) and f.rgb.dtype == np.uint8 for f in frames)


def test_the_frame_cap_spreads_samples_over_the_whole_video(clip):
    with VideoReader(clip, MAX) as video:
        assert video.interval_ms(0.5, 3) == 2000  # 6 s in at most 3 frames
        assert [f.time_ms for f in video.sample(0.5, 3)] == [0, 2000, 4000]
    with VideoReader(clip, MAX) as video:
        assert [f.time_ms for f in video.sample(0.4, 100)][:4] == [0, 400, 800, 1200]


def test_frame_at_gives_the_sampled_frame(tmp_path):
    img = tmp_path / "square.png"
    Image.new("RGB", (60, 60), (250, 10, 10)).save(img)
    path = tmp_path / "moving.mkv"
    write_clip(path, [Scene(3.0, [Shot(img, 10, 10, 60)]), Scene(3.0, [Shot(img, 200, 100, 60)])],
               size=(320, 240), fps=10)
    with VideoReader(path, MAX) as video:
        sampled = {f.time_ms: f.rgb for f in video.sample(1.0, 10)}
    for ms in (0, 2000, 4000, 5000):
        got = frame_at(path, ms, MAX)
        assert np.abs(got.astype(int) - sampled[ms]).max() <= 2, ms


def test_reasons(tmp_path, clip):
    cases = {}
    (tmp_path / "empty.mp4").write_bytes(b"")
    cases["empty.mp4"] = ("empty file (0 bytes)", True)
    (tmp_path / "text.webm").write_bytes(b"hello " * 200)
    cases["text.webm"] = ("not a video file", True)
    write_audio_only(tmp_path / "audio.mp4")
    cases["audio.mp4"] = ("no video stream", True)
    data = clip.read_bytes()
    (tmp_path / "cut.mp4").write_bytes(data[: len(data) // 2])  # the index is at the end: cannot open
    cases["cut.mp4"] = ("corrupt or truncated MP4/QuickTime video", False)
    cases["missing.mp4"] = ("file not found", False)
    for name, (reason, permanent) in cases.items():
        with pytest.raises(DecodeError) as err:
            with VideoReader(tmp_path / name, MAX) as video:
                list(video.sample(1.0, 10))
        assert reason in str(err.value) and err.value.permanent == permanent, (name, str(err.value))
    with pytest.raises(DecodeError, match="video frames too large: 320x240"):
        with VideoReader(clip, 320 * 240 - 1):
            pass


def test_a_phones_portrait_video_is_turned_upright(tmp_path):
    img = tmp_path / "bar.png"
    Image.new("RGB", (40, 100), (250, 250, 250)).save(img)
    path = tmp_path / "portrait.mp4"
    write_portrait(path, [Scene(2.0, [Shot(img, 20, 400, 100)])], size=(180, 640), fps=10)  # a bar low down
    with VideoReader(path, MAX) as video:
        assert (video.info.width, video.info.height) == (640, 180)  # as stored
        frames = list(video.sample(1.0, 10))
    rgb = frames[0].rgb
    assert rgb.shape == (640, 180, 3)  # upright: tall
    assert rgb[400:480, 30:50].mean() > 200 and rgb[100:200].mean() < 120  # the bar where it was drawn
    assert np.abs(frame_at(path, 1000, MAX).astype(int) - frames[1].rgb).max() <= 2


def test_names_and_timestamps(clip):
    assert is_video("a/b/C.MOV") and is_video("x.webm") and not is_video("x.jpg")
    assert container_kind(clip) == "MP4/QuickTime"
    assert video_timestamp(24_000) == "00:00:24.000"
    assert video_timestamp(3_723_045) == "01:02:03.045"


def _moving(tmp_path: Path, keyframes: int | None) -> Path:
    img = tmp_path / "square.png"
    Image.new("RGB", (40, 40), (20, 200, 20)).save(img)
    path = tmp_path / f"long{keyframes}.mp4"
    write_clip(path, [Scene(3.0, [Shot(img, 20 * k, 30, 40)]) for k in range(10)], size=(320, 160), fps=10,
               keyframes=keyframes)
    return path


@pytest.mark.parametrize("keyframes", [10, None])
def test_long_intervals_seek_and_sample_the_same_frames(tmp_path, monkeypatch, keyframes):
    """30 s sampled every 4 s: with a key frame every second the reader seeks and decodes
    far fewer frames; with key frames 25 s apart it stops seeking (and still skips the
    frames no other refers to). The same frames as decoding every frame, either way."""
    path = _moving(tmp_path, keyframes)
    with VideoReader(path, MAX) as video:
        seeking = [(f.number, f.time_ms, f.rgb) for f in video.sample(4.0, 100)]
        decoded = video.decoded
    monkeypatch.setattr(video_module, "SEEK_MIN_MS", 10**9)  # the reference: every frame decoded
    monkeypatch.setattr(video_module, "NEAR_FRAMES", 10**9)
    with VideoReader(path, MAX) as video:
        plain = [(f.number, f.time_ms, f.rgb) for f in video.sample(4.0, 100)]
        assert video.decoded == 300
    assert [(n, t) for n, t, _ in seeking] == [(n, t) for n, t, _ in plain] == [(40 * k, 4000 * k) for k in range(8)]
    assert all(np.abs(a.astype(int) - b).max() <= 2 for (_, _, a), (_, _, b) in zip(seeking, plain))
    if keyframes:
        assert decoded < 150, decoded  # about 1 s of frames per sample, not 4 s
    else:
        assert decoded < 300, decoded  # one wasted seek at most, and B-frames skipped
