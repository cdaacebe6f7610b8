"""The Targeted Anonymization evaluation (experiments module) on real
pretrained models and the offline face set, kept small: thresholds from
identities disjoint from the trials, the results dict the benchmark writes
and the notebook reads, and the figures drawn from it."""
import json

import matplotlib
import numpy as np
import pytest
import torch

matplotlib.use("Agg")

import facelab  # noqa: E402
from facelab.experiments import targeted_anonymization as E  # noqa: E402
from facelab.methods.targeted_anonymization import targeted_anonymization, targeted_anonymization_baseline  # noqa: E402
from facelab.metrics.verification import threshold_at_far  # noqa: E402
from facelab.evaluation.calibration import pair_indices  # noqa: E402
from facelab.viz import targeted_anonymization as TV  # noqa: E402

pytestmark = [pytest.mark.weights, pytest.mark.faces]

NAMES = ("mobileface", "mobilefacenet", "faceapi-resnet")


@pytest.fixture(scope="module")
def models(load_model):
    return {n: load_model(n) for n in NAMES}


@pytest.fixture(scope="module")
def results(offline, models):
    return E.run_protocol(offline, models, victims=["mobileface"], authorized=["mobilefacenet"], cs=(0.0, 1.0),
                          ds=(0.0, 4.0), max_refine=1, per_identity=1, n=3, log=lambda s: None)


def test_thresholds_come_from_identities_no_trial_uses(results, offline, models):
    trial_ids = {t["identity"] for t in results["trials"]}
    labels = np.array(offline.labels)
    keep = np.flatnonzero(~np.isin(labels, list(trial_ids)))
    _, imp = pair_indices(labels[keep])
    pairs = keep[imp]
    m = models["mobilefacenet"]
    th = results["thresholds"]["mobilefacenet"]
    assert th["impostor_pairs"] == len(pairs) and th["images"] == len(keep)
    with torch.no_grad():
        e = m(offline.crops)
    sims = m.similarity(e[pairs[:, 0]], e[pairs[:, 1]])
    assert th["th"] == pytest.approx(threshold_at_far(sims, results["far"]), abs=1e-5)
    assert th["accepted"] <= np.floor(results["far"] * len(pairs))
    assert results["authorized"]["mobilefacenet"]["th_old"] == th["th"]


def test_results_hold_every_decision_and_survive_json(results, offline, models, tmp_path):
    s = results["authorized"]["mobilefacenet"]
    assert s["targets"] == ["faceapi-resnet"]
    assert [r["c"] for r in s["ours"]] == [0.0, 1.0]
    assert {0.0, 4.0} <= {r["d"] for r in s["baseline"]} and s["runs"] == 2 + 1 + len(s["baseline"])
    n = len(results["trials"])
    # the clean row's TAR decisions are the authorized model's own verdicts on (protected, validation)
    m, th = models["mobilefacenet"], results["thresholds"]["mobilefacenet"]["th"]
    with torch.no_grad():
        sim = m.similarity(m(offline.crops[[t["protected"] for t in results["trials"]]]),
                           m(offline.crops[[t["validation"] for t in results["trials"]]]))
    assert s["clean"]["tar_accepts"] == [bool(v) for v in sim >= th]
    for r in [s["clean"], s["ori"], *s["ours"], *s["baseline"]]:
        assert len(r["tar_accepts"]) == n and r["tar"] == sum(r["tar_accepts"]) / n
        assert r["far_n"] == sum(r["far_n_per_trial"]) and r["far_accepted"] == len(r["far_units"])
    cl = s["claims"]
    assert [e["ours_k"] for e in cl["fig1_contrast"]] == [sum(r["tar_accepts"]) for r in s["ours"]]
    assert cl["monotonicity"]["tar"]["n"] == n
    path = tmp_path / "ta.json"
    path.write_text(json.dumps(results))
    assert E.load_results(path) == json.loads(json.dumps(results))
    path.write_text(json.dumps({"victims": ["x"], "runs": []}))  # the schema before this one
    assert E.load_results(path) is None
    assert E.load_results(tmp_path / "missing.json") is None


def test_fig1_and_table1_figures_draw_the_results(results):
    fig = TV.fig1_curves(results)
    ax_tar, ax_far = fig.axes[:2]
    s = results["authorized"]["mobilefacenet"]
    line = ax_tar.get_lines()[0]
    assert list(line.get_xdata()) == [0.0, 1.0]
    assert list(line.get_ydata()) == pytest.approx([100 * r["tar"] for r in s["ours"]])
    assert any(list(ln.get_ydata()) == pytest.approx([100 * s["ori"]["tar"]] * 2) for ln in ax_tar.get_lines())
    fig = TV.table1_figure(results)
    assert fig.axes and "Table 1" in fig.axes[0].get_title()


def test_walk_figure_draws_both_similarities_of_a_live_run(offline, models):
    victim, auth = models["mobileface"], models["mobilefacenet"]
    trial = E.make_trials(offline.labels, per_identity=1)[0]
    x, user = offline.crops[[trial.protected]], offline.crops[list(trial.average)]
    ours = facelab.history(targeted_anonymization(x, user, victim=victim, authorized=auth, c=0.5, n=4, th_old=0.3,
                                                  monitor_every=1))
    base = facelab.history(targeted_anonymization_baseline(x, victim=victim, authorized=auth, d=1.0, n=4,
                                                           user_images=user, monitor=[victim, auth]))
    fig = TV.walk_figure({"ours": ours, "baseline": base}, victim.name, auth.name, th_old=0.3)
    paths = [ln for ln in fig.axes[0].get_lines() if ln.get_label() in ("ours", "baseline")]
    assert list(paths[0].get_xdata()) == ours.state_curves["similarity/mobileface"]
    assert list(paths[0].get_ydata()) == ours.state_curves["sim_authorized"]
    assert list(paths[1].get_ydata()) == base.state_curves["similarity/mobilefacenet"]
    thin = facelab.history(targeted_anonymization(x, user, victim=victim, authorized=auth, c=0.5, n=4, th_old=0.3))
    with pytest.raises(ValueError, match="monitor_every=1"):
        TV.walk_figure({"ours": thin}, victim.name, auth.name, th_old=0.3)
    plain = facelab.history(targeted_anonymization_baseline(x, victim=victim, authorized=auth, d=1.0, n=2))
    with pytest.raises(KeyError, match="monitor"):
        TV.walk_figure({"plain": plain}, victim.name, "faceapi-resnet", th_old=0.3)
