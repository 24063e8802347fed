"""The real default detector on the real dev photos (no database)."""
import subprocess
import sys

import pytest
from PIL import Image

from app.config import load_settings
from app.inference.registry import make_detector
from app.pipeline.analyze import detect_in_image
from app.pipeline.decode import load_rgb
from app.services.detect import analyze_options
from tests.integration.conftest import ROOT

# Face counts in dlib's own annotations of its example photos (SOURCES.md).
DLIB_COUNTS = {
    "2007_007763": 7, "2008_001009": 2, "2008_001322": 3, "2008_002079": 6, "2008_002470": 6,
    "2008_002506": 3, "2008_004176": 7, "2008_007676": 7, "2009_004587": 2,
}
TWO_PEOPLE = ["fr_two_people.jpg", "fr_knn_test_obama_and_biden.jpg", "fr_knn_test_kit_with_rose.jpg",
              "deepface_couple.jpg", "ulfd_imgs_13.jpg"]


@pytest.fixture(scope="module")
def detector():
    d = make_detector("retinaface-mobilenet")
    d.load()
    return d


@pytest.fixture(scope="module")
def opts():
    return analyze_options(load_settings({}, env_file=None))


@pytest.mark.parametrize("photo,count", sorted(DLIB_COUNTS.items()))
def test_group_photos_find_every_annotated_face(faces_dev, detector, opts, photo, count):
    image = load_rgb(faces_dev / "group" / f"dlib_faces_{photo}.jpg", opts.max_pixels)
    faces = detect_in_image(image, detector, opts)  # every face stored at the default settings
    assert len(faces) == count, [round(f.score, 2) for f in faces]


@pytest.mark.parametrize("photo", TWO_PEOPLE)
def test_two_person_photos(faces_dev, detector, opts, photo):
    image = load_rgb(faces_dev / "group" / photo, opts.max_pixels)
    confident = [f for f in detect_in_image(image, detector, opts) if f.score >= 0.9]
    # obama_and_biden also shows a child at the edge, a real third face.
    assert 2 <= len(confident) <= 3


def test_single_person_images_of_each_source_have_a_face(faces_dev, detector, opts):
    # One folder of each source in the manifest; the whole set runs in test_dev_set.py.
    for folder in ["Abdullah_Gul", "ORL_s05", "Yale_subject03", "BBT_sheldon", "Angelina_Jolie", "Barack_Obama"]:
        for path in sorted((faces_dev / folder).iterdir()):
            image = load_rgb(path, opts.max_pixels)
            assert detect_in_image(image, detector, opts), path


def test_boxes_map_back_to_original_pixels(faces_dev, detector, opts, tmp_path):
    """An image shrunk for detection gives the same boxes as a small copy of it, scaled."""
    path = faces_dev / "group" / "fr_two_people.jpg"
    big = load_rgb(path, opts.max_pixels)
    upscaled = tmp_path / "big.png"
    Image.fromarray(big).resize((big.shape[1] * 2, big.shape[0] * 2)).save(upscaled)
    a = detect_in_image(big, detector, opts)
    b = detect_in_image(load_rgb(upscaled, opts.max_pixels), detector, opts)  # 2252 px: shrunk to DETECT_MAX_SIDE
    assert len(a) == len(b) == 2
    for fa, fb in zip(sorted(a, key=lambda f: f.box.x), sorted(b, key=lambda f: f.box.x)):
        # The network sees a different scale, so boxes differ a little; a wrong mapping
        # would be off by a factor (0.57 or 2), far outside this.
        tolerance = 0.1 * fa.box.w
        assert abs(fb.box.x / 2 - fa.box.x) < tolerance and abs(fb.box.w / 2 - fa.box.w) < tolerance


def test_test_mode_prints_faces_and_writes_annotated_copy(faces_dev, tmp_path):
    out = tmp_path / "annotated.jpg"
    res = subprocess.run(
        [sys.executable, str(ROOT / "main.py"), "--test", str(faces_dev / "group" / "fr_two_people.jpg"),
         "--output", str(out)], capture_output=True, text=True, cwd=tmp_path, timeout=300,
    )
    assert res.returncode == 0, res.stderr
    assert "2 face(s)" in res.stdout and res.stdout.count("landmarks") == 2
    with Image.open(out) as im:
        assert im.size == (1126, 661)
    assert not (tmp_path / "data").exists()  # no database touched


def test_test_mode_on_a_bad_file_exits_2(tmp_path):
    bad = tmp_path / "bad.jpg"
    bad.write_text("nope")
    res = subprocess.run([sys.executable, str(ROOT / "main.py"), "--test", str(bad)],
                         capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert res.returncode == 2 and "not an image" in res.stderr and "Traceback" not in res.stderr
