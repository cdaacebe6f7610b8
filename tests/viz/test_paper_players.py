"""The per-paper pictures in facelab.viz (moved out of facelab.experiments): each draws what the
run's Steps say.  Runs are on seeded synthetic models, so nothing is fetched."""
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

import facelab  # noqa: E402
from facelab.methods.pmask import pmask  # noqa: E402
from facelab.methods.tip_im import tip_im  # noqa: E402
from facelab.models.synthetic import synthetic_model  # noqa: E402
from facelab.viz import pmask as vpm  # noqa: E402
from facelab.viz import pmt as vpmt  # noqa: E402
from facelab.viz import tip_im as vt  # noqa: E402


def _faces(n, seed, size=32):
    g = torch.Generator().manual_seed(seed)
    low = torch.rand(n, 3, size // 4, size // 4, generator=g)
    return torch.nn.functional.interpolate(low, size=(size, size), mode="bilinear", align_corners=False).clamp(0, 1)


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


@pytest.fixture(scope="module")
def models():
    return synthetic_model("attacked", seed=1), synthetic_model("watched", seed=5)


def _titles(fig):
    return [a.get_title() for a in fig.axes]


def test_tip_im_timeline_and_player_show_the_run(models):
    attacked, watched = models
    x, targets = _faces(1, 0), _faces(3, 11)
    hist = facelab.history(tip_im(x, targets, attacked, steps=3, monitor=[watched], mmd_every=1))
    fig = vt.timeline_figure(hist, at=2, thresholds={"attacked": 0.3})
    gains_ax, curves_ax, sim_ax, tsim_ax = fig.axes[:4]
    assert {ln.get_label() for ln in curves_ax.get_lines()} >= {"iden (mean)", "mmd (mean)"}
    labels = {ln.get_label() for ln in sim_ax.get_lines()}
    assert {"attacked", "watched"} <= labels
    sim_line = next(ln for ln in sim_ax.get_lines() if ln.get_label() == "watched")
    want = [float(s.state["similarity"]["watched"][0]) for s in hist.steps]
    assert list(sim_line.get_ydata()) == pytest.approx(want)
    assert any(ln.get_linestyle() == "--" and list(ln.get_ydata()) == [0.3, 0.3] for ln in sim_ax.get_lines())
    chosen = gains_ax.collections[-1].get_offsets()[:, 1]
    assert list(chosen) == [int(s.state["target"][0]) for s in hist.steps if s.state["gains"] is not None]
    static = vt.tip_im_player(hist, source=x, target_images=targets, static=True)
    assert static.axes and any("iteration 3" in t for t in _titles(static))


def test_pmask_timeline_marks_the_ssim_bound_and_convergence(models):
    attacked, watched = models
    x, others = _faces(1, 0), _faces(4, 13)
    omega = 0.02
    hist = facelab.history(pmask(x, others, attacked, max_steps=4, omega=omega, monitor=[watched]))
    fig = vpm.timeline_figure(hist, omega=omega)
    ssim_ax = next(a for a in fig.axes if a.get_title().startswith("SSIM"))
    bound = next(ln for ln in ssim_ax.get_lines() if ln.get_label() == "1 − 2ω")
    assert list(bound.get_ydata()) == pytest.approx([1 - 2 * omega] * 2)
    dist_ax = next(a for a in fig.axes if a.get_title().startswith("distance"))
    assert {ln.get_label() for ln in dist_ax.get_lines()} >= {"attacked", "watched (watched)"}
    static = vpm.pmask_player(hist, source=x, omega=omega, static=True)
    assert any(t.startswith(f"iteration {hist.steps[-1].i}") for t in _titles(static))
    last = hist.steps[-1]
    threat = vpm.threat_model_figure(x, x, others[:1], last.x, last, "attacked")
    assert len(threat.axes) == 4 and "attacked" in threat._suptitle.get_text()


def test_delta_slider_static_shows_every_delta():
    x = _faces(1, 0)
    results = {d: {"x": (x + 0.01 * d).clamp(0, 1), "ssim": 0.9, "iterations": 3, "seconds": 1.0, "psr": 0.5}
               for d in (0.5, 1.0, 2.0)}
    fig = vpm.delta_slider(results, source=x, static=True)
    titles = _titles(fig)
    assert sum(t.startswith("δ = ") for t in titles) == 3 and len(fig.axes) == 6


def test_diversity_figure_marks_only_measured_teams():
    ranking = [(("a", "b"), 0.8), (("a", "c"), 0.5), (("b", "c"), 0.2)]
    ax = vpm.diversity_figure(ranking, {("a", "c"): 0.4})
    assert [p.get_height() for p in ax.patches] == pytest.approx([0.8, 0.5, 0.2])
    measured = ax.figure.axes[1].get_lines()[0]
    assert list(measured.get_xdata()) == [1] and list(measured.get_ydata()) == [0.4]


def test_pmt_architecture_figure_has_both_settings():
    fig = vpmt.architecture_figure()
    assert [a.get_title(loc="left") for a in fig.axes] == ["A · upload features", "B · upload images"]


def test_targeted_anonymization_timeline_shows_bd_and_the_boundary(models):
    from facelab.methods.targeted_anonymization import targeted_anonymization
    from facelab.viz import targeted_anonymization as vta

    attacked, watched = models
    authorized = synthetic_model("authorized", seed=3)
    x = _faces(1, 0)
    hist = facelab.history(targeted_anonymization(x, _faces(3, 14), victim=attacked, authorized=authorized, n=4,
                                                  monitor=[watched]))
    fig = vta.timeline_figure(hist, {"watched": 0.2}, at=2)
    bd_ax, auth_ax, sim_ax = fig.axes[:3]
    assert list(bd_ax.get_lines()[0].get_ydata()) == hist.state_curves["bd"]
    th_new = next(ln for ln in auth_ax.get_lines() if ln.get_label() == "th_new")
    assert list(th_new.get_ydata()) == pytest.approx(hist.state_curves["th_new"])
    assert {ln.get_label() for ln in sim_ax.get_lines()} >= {"attacked", "authorized", "watched"}
    static = vta.timeline_player(hist, source=x, static=True)
    assert any(t == "δ (amplified)" for t in _titles(static))


def test_setting_sliders_build_on_the_scrubber():
    """The δ and γ sliders pre-render one frame per setting in the shared scrubber (no kernel redraw)."""
    pytest.importorskip("ipywidgets")
    x = _faces(1, 0)
    deltas = {d: {"x": (x + 0.01 * d).clamp(0, 1), "ssim": 0.9, "iterations": 3, "seconds": 1.0, "psr": 0.5}
              for d in (0.5, 1.0)}
    gammas = {g: {"x": (x + 0.01 * g).clamp(0, 1), "PSNR": 30.0, "SSIM": 0.9, "similarity": {"m": 0.1},
                  "target_similarity": {"m": 0.2}} for g in (0.0, 10.0, 30.0)}
    for widget, n, name in ((vpm.delta_slider(deltas, source=x, static=False), 2, "δ"),
                            (vt.gamma_slider(gammas, source=x, static=False), 3, "γ")):
        controls, shown = widget.children
        slider = controls.children[1]
        assert slider.description == name and slider.max == n - 1
        captions = [frame.children[0].value for frame in shown.children]
        assert captions[0].startswith(f"{name} = ") and len(captions) == n
        assert all(frame.children[1].value[:4] == b"\x89PNG" for frame in shown.children)
