"""An ipywidgets player to scrub and play through a run's steps.

Works in JupyterLab and Colab (core widgets only); where widgets cannot be
shown (no ipywidgets, plain Python, some static renderers) it falls back to
:func:`facelab.viz.summary_grid`.
"""
from __future__ import annotations

import base64
import io
import os
from typing import Callable, Iterable, Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch

from ..steps import History, Step, history
from .figures import step_figure, summary_grid


def widgets_usable() -> bool:
    """True inside a kernel where ipywidgets can be displayed.  ``FACELAB_NO_WIDGETS=1``
    says no (a static page such as ``make site``'s, where a widget's Python callbacks are
    gone: the players draw their static figures instead)."""
    if os.environ.get("FACELAB_NO_WIDGETS") == "1":
        return False
    try:
        import ipywidgets  # noqa: F401
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and getattr(shell, "kernel", None) is not None


def shown_once(fig: "plt.Figure") -> "plt.Figure":
    """A static fallback's figure, returned to be the cell's value.  Under the inline
    backend a figure left open is drawn again at the end of the cell, so it is closed
    here (a closed figure still renders as the cell's value and still saves)."""
    import matplotlib

    if "inline" in matplotlib.get_backend().lower():
        plt.close(fig)
    return fig


def player(run: History | Iterable[Step], source: torch.Tensor | None = None, thresholds: Mapping[str, float] | None = None,
           image_index: int = 0, interval_ms: int = 300, static: bool | None = None):
    """Scrub (slider) or play (▶) through a run.

    ``run`` is a :class:`History` or a step iterator (drained here with
    :func:`facelab.history`).  ``thresholds`` maps model name → verification
    threshold, drawn as a dashed line on that model's similarity curve.
    Returns the widget (display it, or let it be the cell's last value); with
    ``static=True`` or without a widget-capable kernel, returns a matplotlib
    figure instead.
    """
    hist = run if isinstance(run, History) else history(run)
    if static or (static is None and not widgets_usable()):
        return shown_once(summary_grid(hist, source=source, image_index=image_index, thresholds=thresholds))
    return scrubber(
        len(hist.steps),
        lambda k: step_figure(hist, k, source=source, image_index=image_index, thresholds=thresholds),
        iterations=[s.i for s in hist.steps],
        interval_ms=interval_ms,
    )


MAX_FRAMES = 40  # frames pre-rendered per player; longer runs are shown evenly thinned
HINT = "facelab player: run this cell to scrub and play through the run (a saved notebook keeps no live widget)"


def frame_indices(n_frames: int, max_frames: int = MAX_FRAMES) -> list[int]:
    """Which kept steps get a frame: all of them, or ``max_frames`` evenly spread
    (the first, the clean start, and the last always included)."""
    if n_frames <= max_frames:
        return list(range(n_frames))
    return sorted(set(np.linspace(0, n_frames - 1, max_frames).round().astype(int).tolist()))


def render_png(fig: "plt.Figure", dpi: int = 80) -> bytes:
    """A figure as PNG bytes; the figure is closed."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    plt.close(fig)
    return buf.getvalue()


def scrubber(n_frames: int, frame: Callable[[int], "plt.Figure"], label: Callable[[int], str] | None = None,
             description: str = "kept step", interval_ms: int = 300, iterations: Sequence[int] | None = None,
             max_frames: int = MAX_FRAMES):
    """The widget behind every player: a ▶ button, a slider and an
    "iteration N of M" caption over pre-rendered frames of ``frame(k)``.

    Every frame is drawn once, here, to a PNG (redrawing a figure took
    0.3–1.5 s, more than Play's interval).  With ipywidgets 8 every frame
    (caption over image) is a child of one ``Stack`` whose shown child is
    linked to the slider in the browser (``jslink``): a frame change never
    waits for the kernel, and a saved notebook with widget state still scrubs.  With
    ipywidgets 7 (no ``Stack``) the kernel swaps one image's PNG instead.
    Slider position 0 is the first kept step (the clean start); it starts on
    the last.  ``iterations[k]``: the method's iteration of frame ``k`` (for
    the caption; ``label`` overrides it).  Runs with more than ``max_frames``
    kept steps are evenly thinned.  Needs a widget-capable kernel.
    """
    import ipywidgets as W

    picks = frame_indices(n_frames, max_frames)
    pngs = [render_png(frame(k)) for k in picks]
    if label is None:
        if iterations is not None:
            label = lambda k: f"iteration {iterations[k]} of {iterations[-1]}"  # noqa: E731
        else:
            label = lambda k: f"frame {k + 1} of {n_frames}"  # noqa: E731
    last = len(picks) - 1
    slider = W.IntSlider(value=last, min=0, max=last, description=description, continuous_update=True)
    play = W.Play(value=last, min=0, max=last, interval=interval_ms)
    W.jslink((play, "value"), (slider, "value"))
    if hasattr(W, "Stack"):
        frames = []
        for k, png in enumerate(pngs):
            caption = W.Label(label(picks[k]))
            caption.add_class("facelab-caption")
            frames.append(W.VBox([caption, W.Image(value=png, format="png")]))
        shown = W.Stack(frames, selected_index=last)  # caption and image change together
        W.jslink((slider, "value"), (shown, "selected_index"))
        return Player([W.HBox([play, slider]), shown], static_png=pngs[last])
    image = W.Image(value=pngs[last], format="png")
    caption = W.Label(label(picks[last]))
    caption.add_class("facelab-caption")

    def draw(change) -> None:
        caption.value = label(picks[change["new"]])
        image.value = pngs[change["new"]]

    slider.observe(draw, names="value")
    return Player([W.HBox([play, slider, caption]), image], static_png=pngs[last])


def setting_slider(settings: Sequence[float], symbol: str, draw: Callable[[Sequence, float], None],
                   static: bool | None = None, column_width: float = 2.8, height: float = 5.6):
    """A slider over finished runs at several settings of one parameter (PMask's δ, TIP-IM's γ …).

    ``draw(axes, value)`` fills one setting's column of two panels (the protected image above, its
    perturbation below).  Every setting is drawn once into the shared :func:`scrubber`; without a
    widget-capable kernel (or with ``static=True``) one figure shows every setting side by side."""
    values = list(settings)

    def frame(shown: Sequence[float]) -> "plt.Figure":
        fig, axes = plt.subplots(2, len(shown), figsize=(column_width * len(shown), height), squeeze=False)
        for j, v in enumerate(shown):
            draw(axes[:, j], v)
            for a in axes[:, j]:
                a.set_axis_off()
        fig.tight_layout()
        return fig

    if static or (static is None and not widgets_usable()):
        return shown_once(frame(values))
    return scrubber(len(values), lambda k: frame([values[k]]), label=lambda k: f"{symbol} = {values[k]:g}",
                    description=symbol)


def _player_class():
    import ipywidgets as W

    class _Player(W.VBox):
        """A VBox whose saved output also carries a static PNG of the last frame and a
        one-line hint, for viewers that cannot restore live widgets."""

        def __init__(self, children, static_png: bytes):
            super().__init__(children)
            self._static_png = static_png

        def _repr_mimebundle_(self, **kwargs):
            data = super()._repr_mimebundle_(**kwargs)
            if isinstance(data, tuple):
                data = data[0]
            data = dict(data or {})
            data["text/plain"] = HINT
            data["image/png"] = base64.b64encode(self._static_png).decode("ascii")
            return data

    return _Player


def Player(children, static_png: bytes):  # noqa: N802 - builds the widget class lazily (ipywidgets is optional)
    return _player_class()(children, static_png)
