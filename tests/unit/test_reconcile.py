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


def test_changed_file_refreshes_user_faces_that_still_overlap_and_drops_the_rest():
    moved = StoredFace(1, Box(10, 10, 50, 50), "/t/1.jpg", set_by_user=True, person_id=7)
    vanished = StoredFace(2, Box(300, 10, 50, 50), "/t/2.jpg", set_by_user=True, person_id=7)
    auto = StoredFace(3, Box(200, 10, 50, 50), "/t/3.jpg", set_by_user=False, person_id=8)
    found = ["near the user's face", "where the automatic face was", "new"]
    boxes = [Box(14, 12, 50, 50), Box(200, 10, 50, 50), Box(500, 10, 40, 40)]
    plan = reconcile([moved, vanished, auto], found, boxes, changed=True)
    assert plan.refresh == [(moved, "near the user's face")]  # its row and person stay, pixels new
    assert plan.delete == [vanished, auto]  # the vanished decision lands on nobody else
    assert plan.insert == ["where the automatic face was", "new"]
    assert plan.keep == [] and plan.skip == []


def test_changed_file_gives_each_new_face_to_one_user_face_best_overlap_first():
    a = StoredFace(1, Box(0, 0, 100, 100), None, set_by_user=True)
    b = StoredFace(2, Box(20, 0, 100, 100), None, set_by_user=True)
    plan = reconcile([a, b], ["x"], [Box(18, 0, 100, 100)], changed=True)
    assert plan.refresh == [(b, "x")] and plan.delete == [a] and plan.insert == []


def test_changed_video_matches_user_faces_in_their_own_frame_only():
    user = StoredFace(1, Box(0, 0, 50, 50), None, set_by_user=True, frame=3)
    plan = reconcile([user], ["same place, other frame"], [Box(0, 0, 50, 50)], frames=[4], changed=True)
    assert plan.refresh == [] and plan.delete == [user] and plan.insert == ["same place, other frame"]
