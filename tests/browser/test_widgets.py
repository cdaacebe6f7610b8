"""The notebooks' widgets in a real browser: JupyterLab on localhost, headless Chromium.

nbval only runs the kernel side.  Here JupyterLab serves a copy of the
notebooks, Chromium (Debian's package, driven by Playwright) opens one, runs
every cell, then moves the player's slider and presses Play, checking that the
shown frame and the "iteration N of M" caption change, that Play shows every
frame, that a frame takes at most 200 ms from the key press to the new image
on screen (the better of two visits to each frame), and that the console holds no error except the Colab badge, which
cannot load offline.  Notebook 00 is then saved, its kernel shut down and the
notebook reopened: the players must come back from the saved widget state
(``binder/overrides.json`` turns it on), not as "model not found".

Chromium comes from ``tools/ensure_chromium.sh`` (``make test`` runs it).  The
test skips, saying why, only where no Chromium can be had and ``CI`` is unset;
under ``CI=true`` a missing browser fails it.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = ROOT / "notebooks"
FRAME_BUDGET_MS = 200.0
#: the notebook on screen (JupyterLab hides, but keeps in the page, other open documents)
ACTIVE = ".jp-NotebookPanel:not(.lm-mod-hidden)"
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--disable-dev-shm-usage"]

pytestmark = pytest.mark.weights  # the notebooks load the real pretrained models


def _unavailable(reason: str):
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"CI is set, so the browser widget test must run, but {reason}")
    pytest.skip(reason)


def _find_chromium() -> str | None:
    for name in ("chromium", "chromium-browser"):
        path = shutil.which(name)
        if path:
            return path
    return None


@pytest.fixture(scope="module")
def chromium() -> str:
    path = _find_chromium()
    if path is None:
        subprocess.run(["bash", str(ROOT / "tools" / "ensure_chromium.sh")], check=False)
        path = _find_chromium()
    if path is None:
        _unavailable("no Chromium is installed and tools/ensure_chromium.sh could not install one "
                     "(it needs root and apt-get)")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        _unavailable("the Python package playwright is not installed (it is in requirements-dev.txt)")
    return path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str, timeout: float = 5.0):
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return json.loads(r.read().decode())


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """JupyterLab on localhost serving a copy of the notebooks (the originals are never saved over)."""
    tmp = tmp_path_factory.mktemp("lab")
    root = tmp / "notebooks"
    shutil.copytree(NOTEBOOKS, root, ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
    settings = tmp / "settings"
    for plugin, values in {
        "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {"fetchNews": "false",
                                                                           "checkForUpdates": False},
        # render every cell (JupyterLab 4 otherwise builds off-screen cells lazily)
        "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
    }.items():
        f = settings / plugin
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_text(json.dumps(values))
    from facelab.cache import cache_dir

    env = dict(os.environ, FACELAB_FAST="1", FACELAB_CACHE=str(cache_dir()))  # the fetched weights and faces
    for var in ("JUPYTER_CONFIG_DIR", "JUPYTER_DATA_DIR", "JUPYTER_RUNTIME_DIR", "IPYTHONDIR", "XDG_CONFIG_HOME",
                "XDG_CACHE_HOME"):
        (tmp / var).mkdir()
        env[var] = str(tmp / var)
    env["JUPYTER_PATH"] = os.pathsep.join([str(Path(sys.prefix) / "share" / "jupyter")])
    port, token = _free_port(), "facelab-browser-test"
    cmd = [sys.executable, "-m", "jupyterlab", "--no-browser", "--allow-root", f"--port={port}",
           "--ServerApp.ip=127.0.0.1", f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}",
           f"--LabApp.workspaces_dir={tmp / 'workspaces'}", f"--LabApp.user_settings_dir={settings}",
           "--ServerApp.open_browser=False"]
    log = open(tmp / "lab.log", "w")
    proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(120):
            try:
                _get(f"{base}/api/status?token={token}")
                break
            except OSError:
                if proc.poll() is not None:
                    pytest.fail(f"JupyterLab exited: {(tmp / 'lab.log').read_text()[-2000:]}")
                time.sleep(0.5)
        else:
            pytest.fail("JupyterLab did not answer within 60 s")
        yield {"base": base, "token": token, "root": root}
    finally:
        try:
            for k in _get(f"{base}/api/kernels?token={token}"):
                req = urllib.request.Request(f"{base}/api/kernels/{k['id']}?token={token}", method="DELETE")
                urllib.request.urlopen(req, timeout=10).close()
        except OSError:
            pass
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
        log.close()


@pytest.fixture(scope="module")
def browser(chromium):
    from playwright.sync_api import sync_playwright  # a fresh, empty profile per launch
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=chromium, headless=True, args=CHROMIUM_FLAGS)
        yield b
        b.close()


def _kernel_state(lab, name: str) -> str | None:
    for s in _get(f"{lab['base']}/api/sessions?token={lab['token']}"):
        if s.get("path", "").endswith(name):
            return s["kernel"]["execution_state"]
    return None


def _wait_kernel(lab, name: str, state: str, timeout: float) -> None:
    end = time.time() + timeout
    while time.time() < end:
        if _kernel_state(lab, name) == state:
            return
        time.sleep(0.25)
    raise AssertionError(f"the kernel of {name} was not {state} within {timeout:.0f} s")


def _run_all(page, lab, name: str, timeout: float = float(os.environ.get("FACELAB_BROWSER_TIMEOUT", 600))) -> None:
    # ?reset: a fresh workspace, so the notebook of an earlier test is not restored beside this one
    page.goto(f"{lab['base']}/lab/tree/{name}?reset&token={lab['token']}")
    page.wait_for_selector(".jp-Notebook", timeout=60_000)
    _wait_kernel(lab, name, "idle", 90)
    page.locator(".lm-MenuBar-itemLabel", has_text="Run").first.click()
    page.locator(".lm-Menu-itemLabel", has_text="Run All Cells").first.click()
    # done when the kernel has been idle for a while and every code cell has run
    end, idle_since = time.time() + timeout, None
    while time.time() < end:
        pending = page.evaluate(f"""() => [...document.querySelectorAll('{ACTIVE} .jp-CodeCell .jp-InputPrompt')]
            .filter(p => !/\\[\\d+\\]/.test(p.textContent)).length""")
        state = _kernel_state(lab, name)
        if state == "idle" and page.locator(f"{ACTIVE} .jp-RenderedText[data-mime-type='application/vnd.jupyter.stderr']",
                                            has_text="Traceback").count():
            break  # Run All stops at the first error: report it below
        if state == "idle" and pending == 0:
            idle_since = idle_since or time.time()
            if time.time() - idle_since > 2:
                break
        else:
            idle_since = None
        time.sleep(0.5)
    else:
        if os.environ.get("FACELAB_BROWSER_SCREENSHOT"):
            page.screenshot(path=os.environ["FACELAB_BROWSER_SCREENSHOT"], full_page=True)
        prompts = page.evaluate(f"() => [...document.querySelectorAll('{ACTIVE} .jp-CodeCell .jp-InputPrompt')].map(p => p.textContent)")
        errors = page.locator(f"{ACTIVE} .jp-RenderedText[data-mime-type='application/vnd.jupyter.stderr']").all_inner_texts()
        raise AssertionError(f"{name}: Run All did not finish within {timeout:.0f} s; kernel "
                             f"{_kernel_state(lab, name)}, prompts {prompts}, errors {[e[:800] for e in errors]}")
    errors = page.locator(f"{ACTIVE} .jp-RenderedText[data-mime-type='application/vnd.jupyter.stderr']")
    traceback = [t for t in errors.all_inner_texts() if "Error" in t or "Traceback" in t]
    assert not traceback, f"{name}: a cell raised:\n{traceback[0][:2000]}"


WATCH_JS = """(box) => {
    // the shown frame, by its caption and image: a player may replace both elements (ipywidgets' Stack
    // shows one child, and a re-shown image gets a new blob URL), so a frame is counted when its caption
    // and image are both on screen and the caption differs from the last one seen
    const now = () => {
        const img = box.querySelector('img');
        const cap = box.querySelector('.facelab-caption');
        return {src: img ? img.src : '', caption: cap ? cap.textContent : ''};
    };
    window.__frames = [];
    let last = now();
    const captioned = !!last.caption;
    new MutationObserver(() => {
        const f = now();
        if (!f.src || (captioned && !f.caption)) return;  // half drawn: wait for both
        if (f.caption !== last.caption || (!captioned && f.src !== last.src)) {
            last = f;
            window.__frames.push({t: performance.now(), src: f.src, caption: f.caption});
        }
    }).observe(box, {subtree: true, childList: true, characterData: true, attributes: true,
                     attributeFilter: ['src']});
    return last;
}"""


def _players(page):
    """Each player's outer box: a vertical box holding a slider and an image."""
    return (page.locator(f"{ACTIVE} .jp-OutputArea-output .widget-vbox")
            .filter(has=page.locator(".noUi-base")).filter(has=page.locator("img")))


def _n_frames(box) -> int:
    return int(float(box.locator(".noUi-handle").first.get_attribute("aria-valuemax"))) + 1


def _drag_to(page, box, k: int, n: int) -> float:
    """Drag the slider's handle to frame ``k`` of ``n``; returns the page time just before the drag."""
    track = box.locator(".noUi-base").first.bounding_box()
    handle = box.locator(".noUi-handle").first.bounding_box()
    y = handle["y"] + handle["height"] / 2
    page.mouse.move(handle["x"] + handle["width"] / 2, y)
    page.mouse.down()
    t0 = page.evaluate("() => performance.now()")
    page.mouse.move(track["x"] + track["width"] * k / max(1, n - 1), y, steps=2)
    page.mouse.up()
    return t0


def _frame_times(page, box, frames: list[int], n: int, label: str) -> list[float]:
    """Drag to each of ``frames`` in turn; ms from the drag to the new image on screen."""
    times = []
    for k in frames:
        count = page.evaluate("() => window.__frames.length")
        t0 = _drag_to(page, box, k, n)
        try:
            page.wait_for_function(f"() => window.__frames.length > {count}", timeout=15_000)
        except Exception as exc:
            now = box.locator(".noUi-handle").first.get_attribute("aria-valuenow")
            raise AssertionError(f"{label}: dragging the slider to frame {k} of {n} did not change the image "
                                 f"(slider at {now})") from exc
        times.append(page.evaluate("() => window.__frames[window.__frames.length - 1].t") - t0)
    return times


def _check_player(page, box, label: str) -> dict:
    box.scroll_into_view_if_needed()
    start = box.evaluate(WATCH_JS)
    assert start["src"], f"{label}: the player shows no image"
    n = _n_frames(box)
    assert n >= 3, f"{label}: only {n} frames"
    times = _frame_times(page, box, [0], n, label)  # to the first frame: the clean start
    frames = page.evaluate("() => window.__frames")
    assert frames[-1]["src"] != start["src"], f"{label}: moving the slider did not change the frame"
    if start["caption"]:
        assert " 0 of " in frames[-1]["caption"] and frames[-1]["caption"] != start["caption"], \
            f"{label}: the caption did not move to iteration 0: {frames[-1]['caption']!r}"
    times += _frame_times(page, box, [1, 2, 3], n, label)
    seen = [f["caption"] or f["src"] for f in page.evaluate("() => window.__frames")]
    assert len(set(seen)) >= 4, f"{label}: the frames did not change with the slider"
    # each frame's time is the better of two visits: a one-off stall of the machine (seen once at 215 ms on
    # the very first drag after a notebook ran, the next frames 29-43 ms) is not the player; a player that
    # redraws through the kernel is slow on both visits
    again = _frame_times(page, box, [0, 1, 2, 3], n, label)
    times = [min(a, b) for a, b in zip(times, again)]
    play = box.locator(".widget-play button").first
    if play.count():  # Play from the clean start: every frame must appear
        _frame_times(page, box, [0], n, label)
        page.evaluate("() => { window.__frames = []; }")
        play.click()
        page.wait_for_function(f"() => window.__frames.length >= {n - 1}", timeout=max(15_000, 1500 * n))
        shown = page.evaluate("() => window.__frames.map(f => f.caption)")
        assert len(set(shown)) >= n - 1, f"{label}: Play skipped frames: {shown}"
    return {"label": label, "frame_ms": times}


@pytest.fixture()
def page(browser):
    ctx = browser.new_context(viewport={"width": 1400, "height": 1000})
    pg = ctx.new_page()
    pg.console_errors = []
    pg.on("console", lambda m: pg.console_errors.append((m.text, m.location.get("url", "")))
          if m.type == "error" else None)
    pg.on("pageerror", lambda e: pg.console_errors.append((str(e), "")))
    yield pg
    ctx.close()


def _console_errors(page) -> list:
    return [(t, u) for t, u in page.console_errors if "colab" not in (t + u).lower()]


@pytest.mark.parametrize("notebook, players", [
    ("00_getting_started.ipynb", 1),
    ("01_targeted_anonymization.ipynb", 2),  # the boundary-walking timeline player and the generic player
])
def test_notebook_widgets_in_chromium(lab, page, notebook, players, record_property):
    _run_all(page, lab, notebook)
    boxes = _players(page)
    found = boxes.count()
    assert found >= players, f"{notebook}: expected {players} player(s) with an image, found {found}"
    results = [_check_player(page, boxes.nth(i), f"{notebook} widget {i + 1}") for i in range(players)]
    for r in results:
        record_property(r["label"], [round(t, 1) for t in r["frame_ms"]])
        print(r["label"], "frame ms:", [round(t, 1) for t in r["frame_ms"]])
        slow = max(r["frame_ms"])
        assert slow <= FRAME_BUDGET_MS, f"{r['label']}: a frame took {slow:.0f} ms (> {FRAME_BUDGET_MS:.0f} ms)"
    errors = _console_errors(page)
    assert not errors, f"{notebook}: console errors: {errors[:5]}"
    if notebook.startswith("00_"):
        _check_reopened(page, lab, notebook, players)


WIDGET_STATE = "application/vnd.jupyter.widget-state+json"


def _saved_widgets(path) -> dict:
    """The widget metadata of the notebook at ``path``; {} while JupyterLab is still writing it (a file read
    mid-save is cut short: a CI run failed on exactly that)."""
    try:
        return json.loads(path.read_text()).get("metadata", {}).get("widgets", {})
    except json.JSONDecodeError:
        return {}


def _check_reopened(page, lab, name: str, players: int) -> None:
    """Save, shut the kernel down, reopen: the players' last frames must be shown from the saved widget state."""
    path = lab["root"] / name
    before = path.stat().st_mtime
    page.locator(f"{ACTIVE} .jp-Notebook").first.click()
    page.keyboard.press("Control+s")
    end = time.time() + 30
    while time.time() < end and not (path.stat().st_mtime > before and WIDGET_STATE in _saved_widgets(path)):
        time.sleep(0.25)
    saved = _saved_widgets(path)
    assert WIDGET_STATE in saved, \
        f"{name}: the saved notebook holds no widget state (is saveState on in lab/settings/overrides.json?)"
    for k in _get(f"{lab['base']}/api/kernels?token={lab['token']}"):
        req = urllib.request.Request(f"{lab['base']}/api/kernels/{k['id']}?token={lab['token']}", method="DELETE")
        urllib.request.urlopen(req, timeout=10).close()
    page.goto(f"{lab['base']}/lab/tree/{name}?reset&token={lab['token']}")
    page.wait_for_selector(f"{ACTIVE} .jp-Notebook", timeout=60_000)
    boxes = _players(page)
    try:
        boxes.nth(players - 1).wait_for(timeout=30_000)
    except Exception as exc:
        shown = page.locator(f"{ACTIVE} .jp-OutputArea-output").all_inner_texts()
        raise AssertionError(f"{name} reopened: {boxes.count()} player(s) restored, expected {players}; outputs: "
                             f"{[t[:200] for t in shown if 'widget' in t.lower()]}") from exc
    lost = page.locator(f"{ACTIVE} .jp-OutputArea-output", has_text="model not found").count()
    assert lost == 0, f"{name} reopened: {lost} output(s) show 'Error displaying widget: model not found'"
