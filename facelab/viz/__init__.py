"""Drawing runs: an interactive player for notebooks and static figures."""
from .figures import show_images, step_figure, summary_grid
from .player import player

__all__ = ["player", "step_figure", "summary_grid", "show_images"]
