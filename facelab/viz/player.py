"""An ipywidgets player to scrub and play through a run's steps.

Works in JupyterLab and Colab (core widgets only); where widgets cannot be
shown (no ipywidgets, plain Python, some static renderers) it falls back to
:func:`facelab.viz.summary_grid`.
"""
from __future__ import annotations

from typing import Callable, Iterable, Mapping

import matplotlib.pyplot as plt
import torch

from ..steps import History, Step, history
from .figures import step_figure, summary_grid


def widgets_usable() -> bool:
    """True inside a kernel where ipywidgets can be displayed."""
    try:
        import ipywidgets  # noqa: F401
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and getattr(shell, "kernel", None) is not None


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
        return summary_grid(hist, source=source, image_index=image_index, thresholds=thresholds)
    return scrubber(
        len(hist.steps),
        lambda k: step_figure(hist, k, source=source, image_index=image_index, thresholds=thresholds),
        label=lambda k: f"iteration {hist.steps[k].i} of {hist.iterations[-1]}",
        interval_ms=interval_ms,
    )


def scrubber(n_frames: int, frame: Callable[[int], "plt.Figure"], label: Callable[[int], str] | None = None,
             description: str = "kept step", interval_ms: int = 300):
    """The widget behind every player: a ▶ button and a slider over
    ``n_frames`` frames, redrawing ``frame(k)`` (a matplotlib figure) below.
    Starts on the last frame.  Needs a widget-capable kernel."""
    import ipywidgets as W
    from IPython.display import display

    last = n_frames - 1
    slider = W.IntSlider(value=last, min=0, max=last, description=description, continuous_update=False)
    play = W.Play(value=last, min=0, max=last, interval=interval_ms)
    W.jslink((play, "value"), (slider, "value"))
    out = W.Output()
    caption = W.Label()

    def draw(change=None) -> None:
        if label is not None:
            caption.value = label(slider.value)
        with out:
            out.clear_output(wait=True)
            fig = frame(slider.value)
            display(fig)
            plt.close(fig)

    slider.observe(draw, names="value")
    draw()
    return W.VBox([W.HBox([play, slider, caption]), out])
