import numpy as np

from app.pipeline.recheck import recheck
from app.repositories.faces import set_by_user


def _unit(*v: float) -> np.ndarray:
    a = np.array(v, np.float32)
    return a / np.linalg.norm(a)


def test_a_face_close_enough_to_its_persons_other_faces_stays():
    others = np.vstack([_unit(1, 0.1, 0), _unit(1, 0, 0.1), _unit(1, -0.1, 0)])
    verdict = recheck(_unit(1, 0, 0), others, 0.4)
    assert verdict.keep and verdict.checked and verdict.others == 3 and verdict.similarity > 0.99


def test_the_bound_is_on_the_average_not_on_the_best_face():
    others = np.vstack([_unit(1, 0, 0), _unit(0, 1, 0), _unit(0, 0, 1)])  # one twin, two strangers
    verdict = recheck(_unit(1, 0, 0), others, 0.4)
    assert not verdict.keep and abs(verdict.similarity - 1 / 3) < 1e-6
    assert recheck(_unit(1, 0, 0), others, 1 / 3 - 1e-6).keep  # at the bound: stays


def test_with_nothing_to_compare_the_decision_is_kept_unchecked():
    for vector, others in [(_unit(1, 0), None), (_unit(1, 0), np.zeros((0, 2), np.float32)),
                           (None, np.vstack([_unit(1, 0)]))]:
        verdict = recheck(vector, others, 0.4)
        assert verdict.keep and not verdict.checked and verdict.similarity is None


def test_a_face_waiting_for_its_recheck_still_counts_as_the_users():
    assert set_by_user("recheck", 5) and set_by_user("user", None) and set_by_user(None, 5)
    assert not set_by_user("matched", 5) and not set_by_user(None, None)
