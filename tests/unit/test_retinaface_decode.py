import numpy as np

from app.inference.retinaface_onnx import MEAN_BGR, decode, network_input, nms, priors


def test_prior_count_and_order():
    p = priors(64, 96)
    expected = sum((64 // s) * (96 // s) * 2 for s in (8, 16, 32))
    assert p.shape == (expected, 4)
    # first cell of stride 8: centre (4, 4), sizes 16 then 32
    assert p[0].tolist() == [4, 4, 16, 16] and p[1].tolist() == [4, 4, 32, 32]
    assert p[2].tolist() == [12, 4, 16, 16]  # next cell to the right


def test_nms_drops_overlaps():
    boxes = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [50, 50, 60, 60]], np.float32)
    assert nms(boxes, np.array([0.9, 0.8, 0.7]), 0.4) == [0, 2]


def test_decode_zero_offsets_give_the_prior_box():
    h, w = 32, 32
    n = priors(h, w).shape[0]
    loc = np.zeros((n, 4), np.float32)
    landm = np.zeros((n, 10), np.float32)
    conf = np.zeros((n, 2), np.float32)
    conf[1, 1] = 0.95  # prior 1: centre (4, 4), size 32
    faces = decode(loc, conf, landm, h, w, min_score=0.5)
    assert len(faces) == 1
    f = faces[0]
    assert (f.box.x, f.box.y, f.box.w, f.box.h) == (-12, -12, 32, 32)
    assert f.landmarks[0] == (4, 4) and abs(f.score - 0.95) < 1e-6


def test_network_input_is_bgr_minus_the_training_mean_channels_first():
    rng = np.random.default_rng(3)
    rgb = rng.integers(0, 256, (5, 7, 3), dtype=np.uint8)
    out = np.empty((3, 5, 7), np.float32)
    network_input(rgb, out)
    expected = (rgb.astype(np.float32)[..., ::-1] - MEAN_BGR).transpose(2, 0, 1)
    assert np.array_equal(out, expected)
    assert out[0, 2, 3] == float(rgb[2, 3, 2]) - 104.0  # blue first
