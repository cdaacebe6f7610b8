"""The static site of executed notebooks (`make site`, mkdocs.yml): its configuration is
valid, lists every notebook, executes them by default, and renders every page.  The
notebooks are not executed here (CI runs each under nbval already): the build runs with
FACELAB_SITE_EXECUTE=false, which the site's configuration reads."""
from pathlib import Path

from mkdocs import config as mkdocs_config  # mkdocs-jupyter is in requirements-dev.txt: missing is a failure
from mkdocs.commands.build import build

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "mkdocs.yml"


def _nav_files(nav) -> list[str]:
    out = []
    for item in nav:
        value = next(iter(item.values())) if isinstance(item, dict) else item
        out += _nav_files(value) if isinstance(value, list) else [value]
    return out


def _load(monkeypatch, execute: str | None, site_dir: Path | None = None):
    if execute is None:
        monkeypatch.delenv("FACELAB_SITE_EXECUTE", raising=False)
    else:
        monkeypatch.setenv("FACELAB_SITE_EXECUTE", execute)
    kw = {"site_dir": str(site_dir)} if site_dir else {}
    return mkdocs_config.load_config(str(CONFIG), **kw)


def test_config_lists_every_notebook_and_executes_by_default(monkeypatch):
    cfg = _load(monkeypatch, None)
    nav = _nav_files(cfg["nav"])
    notebooks = sorted(f"notebooks/{p.name}" for p in (ROOT / "notebooks").glob("*.ipynb"))
    assert notebooks and sorted(n for n in nav if n.endswith(".ipynb")) == notebooks, "add new notebooks to mkdocs.yml's nav"
    for page in nav:
        assert (Path(cfg["docs_dir"]) / page).is_file(), f"mkdocs.yml's nav names {page}, which is not in docs/"
    plugin = cfg["plugins"]["mkdocs-jupyter"].config
    assert plugin["execute"] is True and plugin["allow_errors"] is False  # `make site` runs every notebook, failures stop it
    assert plugin["cache"] is False  # its cache key ignores FACELAB_FAST, so a fast page could stand in for a full one
    assert Path(cfg["site_dir"]) == ROOT / "site"
    assert "site/" in (ROOT / ".gitignore").read_text().split()
    assert _load(monkeypatch, "false")["plugins"]["mkdocs-jupyter"].config["execute"] is False


def test_site_renders_every_page_without_executing(monkeypatch, tmp_path):
    before = {p.name: p.read_bytes() for p in (ROOT / "notebooks").glob("*.ipynb")}
    cfg = _load(monkeypatch, "false", tmp_path / "site")
    build(cfg)
    site = tmp_path / "site"
    assert (site / "index.html").is_file()
    for name in before:
        page = site / "notebooks" / name.replace(".ipynb", ".html")
        assert page.is_file(), f"{name} has no page"
        html = page.read_text()
        assert "jp-Notebook" in html and "jp-CodeCell" in html  # rendered as a notebook, with its code
        assert '<div class="jp-OutputArea-child' not in html  # not executed: the committed notebooks carry no outputs
    assert "04 · TIP-IM" in (site / "notebooks" / "04_tip_im.html").read_text()
    assert {p.name: p.read_bytes() for p in (ROOT / "notebooks").glob("*.ipynb")} == before  # sources untouched


def test_site_pages_get_static_players(monkeypatch):
    """`make site` sets FACELAB_NO_WIDGETS=1: a player on a static page is a figure, since
    its slider's Python callbacks are gone (and the widget needs a CDN script to show at all)."""
    import IPython

    from facelab.viz.player import widgets_usable

    class Kernel:  # a shell that has a kernel, as inside Jupyter
        kernel = object()

    monkeypatch.setattr(IPython, "get_ipython", lambda: Kernel())
    monkeypatch.delenv("FACELAB_NO_WIDGETS", raising=False)
    assert widgets_usable() is True
    monkeypatch.setenv("FACELAB_NO_WIDGETS", "1")
    assert widgets_usable() is False
    site_rule = (ROOT / "Makefile").read_text().split("\nsite:", 1)[1]
    assert "FACELAB_NO_WIDGETS=1" in site_rule.split("\n\n", 1)[0]


def test_a_static_player_is_drawn_once_on_a_page(monkeypatch):
    """Executed as `make site` executes notebooks (a kernel, the inline backend,
    FACELAB_NO_WIDGETS=1): a player cell shows its figure once, not twice."""
    import nbformat
    from nbclient import NotebookClient

    monkeypatch.setenv("FACELAB_NO_WIDGETS", "1")
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(
        "import torch, facelab\n"
        "from facelab import viz\n"
        "x = torch.rand(1, 3, 16, 16, generator=torch.Generator().manual_seed(0))\n"
        "hist = facelab.history(facelab.Step(i, (x + 0.01 * i).clamp(0, 1), {'loss': torch.tensor(1.0 / (i + 1))})\n"
        "                       for i in range(4))\n"
        "viz.player(hist)")])
    NotebookClient(nb, timeout=120, kernel_name="python3").execute()
    outputs = nb.cells[0].outputs
    assert [o.output_type for o in outputs if o.output_type == "error"] == []
    images = [o for o in outputs if "image/png" in o.get("data", {})]
    assert len(images) == 1, [o.output_type for o in outputs]
