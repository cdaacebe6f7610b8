"""PMT's pictures (Facial Data Minimization): the paper's Fig. 1 as a diagram."""
from __future__ import annotations

__all__ = ["architecture_figure"]


def architecture_figure():
    """Fig. 1 of the paper as a picture: (A) the user uploads shallow features E_c(x),
    (B) the user uploads an image; PMT sits on the user side in both."""
    import matplotlib.pyplot as plt
    from matplotlib.patches import FancyBboxPatch

    fig, axes = plt.subplots(2, 1, figsize=(10, 4.6))
    rows = [
        ("A · upload features", [("photo x", "#dde"), ("PMT → x̃", "#cfc"), ("shallow model E_c\n(user side)", "#ffd"),
                                  ("features z̃ = E_c(x̃)", "#eee"), ("server model E_s", "#fdd"), ("identity", "#eee")],
         "attacker sees z̃ → white-/black-box reconstruction"),
        ("B · upload images", [("photo x", "#dde"), ("PMT → x̃", "#cfc"), ("upload x̃", "#eee"),
                               ("full model f = E_s∘E_c\n(server)", "#fdd"), ("identity", "#eee")],
         "attacker sees x̃ → other face models (data abuse), attribute models"),
    ]
    for ax, (title, boxes, threat) in zip(axes, rows):
        ax.set_xlim(0, len(boxes) * 2)
        ax.set_ylim(0, 2)
        ax.axis("off")
        ax.set_title(title, loc="left", fontsize=11)
        for k, (label, colour) in enumerate(boxes):
            ax.add_patch(FancyBboxPatch((k * 2 + 0.1, 0.8), 1.6, 0.9, boxstyle="round,pad=0.05", fc=colour, ec="#555"))
            ax.text(k * 2 + 0.9, 1.25, label, ha="center", va="center", fontsize=8.5)
            if k:
                ax.annotate("", xy=(k * 2 + 0.08, 1.25), xytext=(k * 2 - 0.28, 1.25),
                            arrowprops=dict(arrowstyle="->", color="#333"))
        ax.text(0.1, 0.3, "threat: " + threat, fontsize=9, color="#a00")
    fig.tight_layout()
    return fig
