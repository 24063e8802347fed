"""Cross-validation's choice among near-ties (app/services/crossval.py)."""
from app.services.crossval import Setting, grid, tie_order


def test_near_ties_go_to_the_setting_nearest_the_calibrated_bounds():
    centre = (0.425, 0.485)
    settings = grid(*centre)
    assert Setting(0.425, 0.485, 3) in settings
    # the calibrated bounds win over stricter or looser ones at the same minimum size
    assert min(settings, key=lambda s: tie_order(s, centre)) == Setting(0.425, 0.485, 3)
    tied = [Setting(0.475, 0.535, 3), Setting(0.45, 0.485, 2), Setting(0.4, 0.485, 3)]
    # equal distance: the larger minimum size, then the higher bound
    assert min(tied, key=lambda s: tie_order(s, centre)) == Setting(0.4, 0.485, 3)
    assert min(tied[:2], key=lambda s: tie_order(s, centre)) == Setting(0.45, 0.485, 2)
