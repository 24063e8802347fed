import numpy as np
from PIL import Image, ImageFilter

from app.pipeline import resize
from app.pipeline.faces import square_crop
from app.types import Box, DetectedFace
from app.pipeline.quality import Gates, is_usable, laplacian_variance
from app.pipeline.thumbnail import thumbnail_jpeg


def _face(x=10, y=10, w=50, h=60, score=0.99):
    return DetectedFace(Box(x, y, w, h), score, tuple((x + i, y + i) for i in range(5)))


def test_iou():
    a = Box(0, 0, 10, 10)
    assert a.iou(a) == 1.0
    assert a.iou(Box(5, 0, 10, 10)) == 50 / 150
    assert a.iou(Box(20, 20, 5, 5)) == 0.0


def test_box_json_round_trip():
    b = Box(1.4, 2.6, 30.2, 40.7)
    assert b.to_json() == '{"x": 1, "y": 3, "w": 30, "h": 41}'
    assert Box.from_json(b.to_json()) == Box(1, 3, 30, 41)


def test_square_crop_pads_outside_the_image():
    img = np.full((100, 100, 3), 200, np.uint8)
    crop = square_crop(img, Box(-10, 40, 20, 40), margin=0.0)  # half outside on the left
    assert crop.shape == (40, 40, 3)
    assert (crop[:, :10] == 0).all() and (crop[:, 20:] == 200).all()


def test_thumbnail_is_square_jpeg_of_requested_size():
    img = np.random.default_rng(1).integers(0, 255, (300, 200, 3), dtype=np.uint8)
    data = thumbnail_jpeg(img, Box(50, 50, 60, 90), size=112, margin=0.2)
    import io
    with Image.open(io.BytesIO(data)) as im:
        assert im.size == (112, 112) and im.format == "JPEG"


def test_blur_measure_orders_sharp_above_blurred():
    rng = np.random.default_rng(2)
    sharp = np.kron(rng.integers(0, 255, (28, 28)), np.ones((4, 4))).astype(np.uint8)
    sharp_rgb = np.stack([sharp] * 3, axis=2)
    blurred = np.asarray(Image.fromarray(sharp_rgb).filter(ImageFilter.GaussianBlur(3)))
    assert laplacian_variance(sharp_rgb) > 10 * laplacian_variance(blurred)


def test_gates():
    gates = Gates(min_score=0.9, min_face_px=40, min_blur=15)
    assert is_usable(_face(), 100, gates)
    assert not is_usable(_face(score=0.8), 100, gates)
    assert not is_usable(_face(w=30), 100, gates)
    assert not is_usable(_face(), 5, gates)


def test_fit_shrinks_only_and_maps_back():
    img = np.zeros((1000, 3000, 3), np.uint8)
    small, scale = resize.fit(img, 1500)
    assert small.shape == (500, 1500, 3)
    face = resize.to_original(_face(x=100, y=50, w=20, h=30), scale)
    assert face.box == Box(200, 100, 40, 60)
    assert face.landmarks[0] == (200, 100)
    same, s1 = resize.fit(img, 4000)
    assert same is img and s1.sx == 1.0


def test_to_original_clips_to_the_image():
    _, scale = resize.fit(np.zeros((100, 100, 3), np.uint8), 200)
    face = resize.to_original(_face(x=-5, y=90, w=20, h=20), scale)
    assert face.box == Box(0, 90, 15, 10)
