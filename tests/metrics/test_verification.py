import pytest

from facelab.metrics import roc_auc, tar_at_far, threshold_at_far


def test_threshold_at_far_on_a_hand_made_list():
    impostor = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0]
    th = threshold_at_far(impostor, 0.2)          # at most 2 of 10 accepted
    assert sum(s >= th for s in impostor) == 2
    assert 0.8 < th <= 0.9 + 1e-12
    th0 = threshold_at_far(impostor, 0.0)
    assert th0 > 1.0 and sum(s >= th0 for s in impostor) == 0


def test_tar_and_auc():
    genuine = [0.95, 0.85, 0.75, 0.2]
    impostor = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0]
    tar, th = tar_at_far(genuine, impostor, 0.2)
    assert tar == 0.5 and 0.8 < th < 0.85   # 0.95 and 0.85 pass
    assert roc_auc([1, 2], [0, 0.5]) == 1.0
    assert roc_auc([0], [1]) == 0.0
    assert roc_auc([0.5], [0.5]) == 0.5
    # 0.95: beats 9 of 10, 0.85: 8, 0.75: 7, 0.2: 1 (tie with 0.2 counts half) -> 25.5/40
    assert roc_auc(genuine, impostor) == pytest.approx(25.5 / 40)


def test_bad_scores_are_refused():
    with pytest.raises(ValueError):
        threshold_at_far([], 0.1)
    with pytest.raises(ValueError):
        threshold_at_far([float("nan")], 0.1)
    with pytest.raises(ValueError):
        threshold_at_far([0.1], 1.5)
