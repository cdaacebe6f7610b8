"""TIP-IM's Fig. 4 (Rank-1-T and SSIM against γ) and Fig. 5-style gallery figure
(facelab.viz.tip_im): the figures draw what the rows and the ranks say."""
import json

import matplotlib

matplotlib.use("Agg")
import matplotlib.colors as mcolors  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from facelab.experiments import tip_im as tipx  # noqa: E402
from facelab.metrics.identification import similarity_matrix, top_n  # noqa: E402
from facelab.viz import tip_im as vt  # noqa: E402


def _rows(gammas=(0.0, 10.0, 30.0), models=(("sur", "white"), ("bb1", "black"), ("bb2", "black")), probes=5):
    """Rows shaped like run_protocol's, with known per-probe outcomes (seeded)."""
    rng = np.random.default_rng(0)
    rows = [{"method": "clean", "gamma": float("nan"), "model": m, "box": b, "R1-T per probe": [False] * probes,
             "SSIM per probe": [1.0] * probes, "probe ids": list(range(probes)), "chance R1-T": 0.2}
            for m, b in models]
    for g in gammas:
        ssim = rng.uniform(0.6, 0.9, probes).tolist()
        for m, b in models:
            rows.append({"method": "G", "gamma": g, "model": m, "box": b,
                         "R1-T per probe": (rng.random(probes) < 0.5).tolist(), "SSIM per probe": ssim,
                         "probe ids": list(range(probes)), "chance R1-T": 0.2})
    rows.append({**rows[-1], "method": "single", "gamma": 0.0})
    return rows


def _line(ax, label):
    (line,) = [ln for ln in ax.get_lines() if ln.get_label() == label]
    return line


def test_gamma_sweep_reads_per_probe_outcomes():
    rows = _rows()
    sweep = vt.gamma_sweep(rows)
    assert sweep.gammas == (0.0, 10.0, 30.0)
    assert sweep.models == ("sur", "bb1", "bb2") and sweep.white_box == ("sur",) and sweep.black_box == ("bb1", "bb2")
    assert sweep.probes == 5
    for j, g in enumerate(sweep.gammas):
        for m in sweep.models:
            row = next(r for r in rows if r["method"] == "G" and r["gamma"] == g and r["model"] == m)
            assert sweep.rate(m)[j] == pytest.approx(np.mean(row["R1-T per probe"]))
            assert sweep.ssim[j].tolist() == row["SSIM per probe"]
    assert np.allclose(sweep.black_box_rate(), (sweep.rate("bb1") + sweep.rate("bb2")) / 2)
    assert vt.gamma_sweep(rows, method="single") is None  # one γ only: not a sweep
    with pytest.raises(ValueError, match="probe"):
        bad = _rows()
        bad[-2]["probe ids"] = [9, 8, 7, 6, 5]
        vt.gamma_sweep(bad)
    with pytest.raises(ValueError, match="rerun"):
        vt.gamma_sweep([{k: v for k, v in r.items() if k != "SSIM per probe"} for r in rows])


def test_gamma_figure_draws_every_model_the_mean_and_chance():
    sweep = vt.gamma_sweep(_rows())
    fig = vt.gamma_figure(sweep, source="test")
    try:
        ax_r, ax_s = fig.axes
        for m in sweep.models:
            label = f"{m} (white box)" if m in sweep.white_box else m
            line = _line(ax_r, label)
            assert np.allclose(line.get_xdata(), sweep.gammas) and np.allclose(line.get_ydata(), sweep.rate(m))
        assert np.allclose(_line(ax_r, "chance (random ranking)").get_ydata(), 0.2)
        (mean,) = [c for c in ax_r.containers if c.get_label().startswith("black-box mean")]
        assert np.allclose(mean.lines[0].get_ydata(), sweep.black_box_rate())
        # the CI brackets the mean at every γ
        (bars,) = mean.lines[2]
        for (lo, hi), y in zip([seg[:, 1] for seg in bars.get_segments()], sweep.black_box_rate()):
            assert lo - 1e-9 <= y <= hi + 1e-9
        assert "5 probes" in ax_r.get_title()
        (ssim,) = ax_s.containers
        assert np.allclose(ssim.lines[0].get_ydata(), sweep.ssim.mean(axis=1))
        legend = [t.get_text() for t in ax_r.get_legend().get_texts()]
        assert len(legend) == len(sweep.models) + 2
    finally:
        plt.close(fig)
    with pytest.raises(TypeError, match="gamma_sweep"):
        vt.gamma_figure(_rows())


def test_benchmark_json_gives_a_sweep_when_it_has_several_gammas(tmp_path):
    assert vt.load_benchmark_rows(tmp_path / "absent.json") is None
    rows = vt.load_benchmark_rows()
    if rows is None:
        pytest.skip("no benchmarks/results/tip_im.json next to this facelab (not a clone of the repository)")
    sweep = vt.gamma_sweep(rows)
    gammas = {r["gamma"] for r in rows if r["method"] == "G"}
    assert sweep is not None and set(sweep.gammas) == gammas and len(gammas) >= 2
    for m in sweep.models:
        got = [next(r["R1-T"] for r in rows if r["method"] == "G" and r["gamma"] == g and r["model"] == m)
               for g in sweep.gammas]
        assert np.allclose(sweep.rate(m), got)  # per-probe outcomes agree with the table's rates
    (tmp_path / "bad.json").write_text(json.dumps({"command": "x"}))
    with pytest.raises(ValueError, match="rows"):
        vt.load_benchmark_rows(tmp_path / "bad.json")


@pytest.mark.weights
def test_live_protocol_rows_give_the_figure(offline, load_model):
    """run_protocol's own table (the notebook's fallback when the benchmark JSON is absent)."""
    rows = tipx.run_protocol(offline, surrogate=load_model("mobileface"), black_boxes=[load_model("mobilefacenet")],
                             settings=[("G", 0.0), ("G", 100.0)], steps=2, probes_per_identity=1, max_protected=2,
                             max_gallery_per_identity=4, log=None)
    sweep = vt.gamma_sweep(rows)
    assert sweep.gammas == (0.0, 100.0) and sweep.models == ("mobileface", "mobilefacenet") and sweep.probes == 2
    fig = vt.gamma_figure(sweep)
    try:
        assert np.allclose(_line(fig.axes[0], "mobilefacenet").get_ydata(),
                           [rows.one(method="G", gamma=g, model="mobilefacenet")["R1-T"] for g in (0.0, 100.0)])
    finally:
        plt.close(fig)


@pytest.mark.weights
def test_gallery_figure_frames_follow_the_ranks(offline, load_model):
    model = load_model("mobileface")
    labels = list(offline.labels)
    protocol = tipx.make_protocol(labels, probes_per_identity=1, max_gallery_per_identity=4)
    group = protocol.groups[0]
    own = labels[group.probes[0]]
    targets = [labels[t] for t in group.targets]
    gallery = offline.crops[torch.as_tensor(protocol.gallery)]
    gallery_labels = [labels[i] for i in protocol.gallery]
    x = offline.crops[list(group.probes)]
    # a second probe: the gallery's best target image itself, so a target must rank first
    s = similarity_matrix(model, x, gallery)[0]
    tgt_cols = [j for j, lab in enumerate(gallery_labels) if lab in targets]
    best_target = gallery[tgt_cols[int(s[tgt_cols].argmax())]][None]
    k = 4
    fig = vt.gallery_figure(model, {"clean": x, "a target photo": best_target}, gallery, gallery_labels, own, targets, k=k)
    try:
        axes = np.array(fig.axes).reshape(2, k + 1)
        colour = {"own": vt.OWN_COLOUR, "target": vt.TARGET_COLOUR, "other": vt.OTHER_COLOUR}
        for row, (name, probe) in enumerate((("clean", x), ("a target photo", best_target))):
            scores = similarity_matrix(model, probe, gallery)
            expected = top_n(scores, k)[0]
            matches = fig.matches[name]
            assert [m.index for m in matches] == expected.tolist()
            assert [m.rank for m in matches] == list(range(1, k + 1))
            for m, ax in zip(matches, axes[row, 1:]):
                lab = gallery_labels[m.index]
                kind = "own" if lab == own else "target" if lab in targets else "other"
                assert m.kind == kind and m.label == lab
                assert mcolors.same_color(ax.spines["top"].get_edgecolor(), colour[kind])
                assert ax.get_title() == f"#{m.rank} {lab}"
                assert f"{float(scores[0, m.index]):.2f}" in [t.get_text() for t in ax.texts]
                assert np.allclose(ax.get_images()[0].get_array(), gallery[m.index].permute(1, 2, 0).numpy())
            ranks = fig.first_ranks[name]
            order = [gallery_labels[j] for j in top_n(scores, len(gallery_labels))[0]]
            assert ranks["own"] == order.index(own) + 1
            assert ranks["target"] == 1 + min(order.index(t) for t in targets if t in order)
        assert fig.matches["a target photo"][0].kind == "target"  # its own gallery copy ranks first
        legend = [t.get_text() for t in fig.legends[0].get_texts()]
        assert any(own in t for t in legend) and any("target" in t for t in legend)
    finally:
        plt.close(fig)
    with pytest.raises(ValueError, match="own identity"):
        vt.gallery_figure(model, {"clean": x}, gallery, gallery_labels, own, [own], k=3)
    with pytest.raises(TypeError, match="probes"):
        vt.gallery_figure(model, x, gallery, gallery_labels, own, targets)


def test_gamma_steps_compare_consecutive_gammas_on_black_box_pairs():
    sweep = vt.gamma_sweep(_rows())
    steps = vt.gamma_steps(sweep)
    assert [(g0, g1) for g0, g1, _ in steps] == [(0.0, 10.0), (10.0, 30.0)]
    for j, (_, _, c) in enumerate(steps):
        before = np.concatenate([sweep.hits[m][j] for m in sweep.black_box])
        after = np.concatenate([sweep.hits[m][j + 1] for m in sweep.black_box])
        assert c.n == 2 * sweep.probes  # two black boxes × five probes; the white box is not counted
        assert (c.wins, c.losses) == (int((after & ~before).sum()), int((before & ~after).sum()))
        assert c.rate_a == pytest.approx(after.mean()) and c.rate_b == pytest.approx(before.mean())
    white_only = vt.gamma_sweep(_rows(models=(("sur", "white"),)))
    with pytest.raises(ValueError, match="black-box"):
        vt.gamma_steps(white_only)
