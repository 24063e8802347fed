from app.pipeline.reconcile import StoredFace, reconcile
from app.types import Box


def test_user_faces_are_kept_and_their_redetections_skipped():
    user = StoredFace(1, Box(10, 10, 50, 50), "/t/1.jpg", set_by_user=True)
    auto = StoredFace(2, Box(200, 10, 50, 50), "/t/2.jpg", set_by_user=False)
    found = ["same as user face", "same as auto face", "new face"]
    boxes = [Box(12, 11, 50, 50), Box(200, 10, 50, 50), Box(400, 10, 40, 40)]
    plan = reconcile([user, auto], found, boxes)
    assert plan.keep == [user]
    assert plan.delete == [auto]  # automatic faces are replaced, never duplicated
    assert plan.insert == ["same as auto face", "new face"]
    assert plan.skip == ["same as user face"]


def test_user_face_without_a_usable_box_is_kept_and_blocks_nothing():
    user = StoredFace(1, None, None, set_by_user=True)
    plan = reconcile([user], ["a"], [Box(0, 0, 10, 10)])
    assert plan.keep == [user] and plan.insert == ["a"] and not plan.delete
