"""Committed benchmark results match the code and data that made them (benchmarks/provenance.py).

The first test is the one that matters: it fails, naming the command to rerun, when a table in
benchmarks/results/ is stale, unrecorded or edited by hand.  The others prove on a temporary tree
that the checker can fail in each of those ways (and stays quiet when nothing changed)."""
from __future__ import annotations

import ast
import json
import subprocess

import pytest

from benchmarks import provenance as P


def test_committed_results_are_fresh():
    problems = P.check()
    assert not problems, (
        f"{len(problems)} problem(s) with benchmarks/results/ (docs/architecture.md, 'Results that cannot go stale silently'):\n  "
        + "\n  ".join(str(p) for p in problems)
        + "\nRerun each command named above: a run of `python -m benchmarks SUITE` records itself in "
          "benchmarks/results/provenance.json; commit the results and that file together.")


def test_every_benchmark_suite_has_a_record_entry():
    tree = ast.parse((P.ROOT / "benchmarks" / "__main__.py").read_text())
    suites = next(node.value for node in ast.walk(tree) if isinstance(node, ast.Assign)
                  and any(getattr(t, "id", None) == "SUITES" for t in node.targets))
    names = {k.value for k in suites.keys}
    assert names and names <= {bench for bench, part in P.PARTS if part == "all"}
    for bench, part in [*P.PARTS, *P.RENDER_PARTS]:
        assert all(s in P.SUITES for s in {**P.PARTS, **P.RENDER_PARTS}[(bench, part)])
    for name, spec in P.SUITES.items():
        assert spec.outputs and spec.inputs and spec.command.startswith("python -m benchmarks"), name
        assert all(p.startswith(P.RESULTS + "/") for p in spec.outputs), name
        assert set(spec.render_inputs) <= set(spec.inputs), name
        assert "facelab/steps.py" not in spec.inputs or name == "overhead", name  # plumbing, not a direct input


# ---- the checker on a temporary tree ---------------------------------------------------------------

CMD = "python -m benchmarks demo --threads 1"


@pytest.fixture
def tree(tmp_path):
    """A repository root with one suite: three inputs (method, wording, data), two outputs."""
    (tmp_path / "src").mkdir()
    (tmp_path / P.RESULTS).mkdir(parents=True)
    (tmp_path / "src/method.py").write_text("ALPHA = 1\n")
    (tmp_path / "src/words.py").write_text("VERDICT = 'holds'\n")
    (tmp_path / "src/manifest.json").write_text('{"faces": 81}\n')
    (tmp_path / P.RESULTS / "demo.md").write_text("| a | 1 |\n")
    (tmp_path / P.RESULTS / "demo.json").write_text('{"a": 1}\n')
    suites = {"demo": P.Suite(outputs=(f"{P.RESULTS}/demo.md", f"{P.RESULTS}/demo.json"),
                              inputs=("src/manifest.json", "src/method.py", "src/words.py"), command=CMD,
                              render_inputs=("src/words.py",))}
    return tmp_path, suites


def _kinds(problems):
    return sorted((p.kind, p.path) for p in problems)


def test_a_recorded_run_is_fresh_and_the_record_is_stable(tree):
    root, suites = tree
    entry = P.record("demo", argv=["/x/benchmarks/__main__.py", "demo", "--threads", "1"], seeds=[0, 1],
                     root=root, suites=suites)
    assert P.check(root=root, suites=suites) == []
    assert entry["command"] == CMD and entry["seeds"] == [0, 1] and entry["time"].endswith("+00:00")
    assert set(entry["inputs"]) == set(suites["demo"].inputs) and set(entry["outputs"]) == set(suites["demo"].outputs)
    text = (root / P.RECORD).read_text()
    assert json.loads(text)["demo"]["inputs"]["src/method.py"] == P.sha256(root / "src/method.py")
    assert text == json.dumps(json.loads(text), indent=1, sort_keys=True, ensure_ascii=False) + "\n"
    assert not list((root / P.RESULTS).glob("provenance.json.*.tmp"))  # the atomic write left nothing behind


def test_no_record_names_the_command(tree):
    root, suites = tree
    (problem,) = P.check(root=root, suites=suites)
    assert problem.kind == "no record" and CMD in str(problem)


def test_a_changed_input_makes_the_table_stale(tree):
    root, suites = tree
    P.record("demo", root=root, suites=suites)
    (root / "src/manifest.json").write_text('{"faces": 82}\n')
    (problem,) = P.check(root=root, suites=suites)
    assert (problem.kind, problem.path) == ("stale input", "src/manifest.json")
    assert "src/manifest.json" in str(problem) and f"rerun: {CMD}" in str(problem)


def test_a_hand_edited_output_is_caught(tree):
    root, suites = tree
    P.record("demo", root=root, suites=suites)
    (root / P.RESULTS / "demo.md").write_text("| a | 2 |\n")
    (root / P.RESULTS / "demo.json").unlink()
    assert _kinds(P.check(root=root, suites=suites)) == [("edited output", f"{P.RESULTS}/demo.md"),
                                                          ("missing output", f"{P.RESULTS}/demo.json")]


def test_an_undeclared_results_file_is_caught_and_scratch_files_are_not(tree):
    root, suites = tree
    P.record("demo", root=root, suites=suites)
    (root / P.RESULTS / "other.md").write_text("numbers from nowhere\n")
    (root / P.RESULTS / "demo_fast.md").write_text("smoke run\n")
    (root / P.RESULTS / "x.tmp").write_text("half written\n")
    (problem,) = P.check(root=root, suites=suites)
    assert (problem.kind, problem.path) == ("unknown file", f"{P.RESULTS}/other.md")
    assert "declares" in str(problem)


def test_an_input_added_to_the_registry_later_is_not_vouched_for(tree):
    root, suites = tree
    P.record("demo", root=root, suites=suites)
    (root / "src/extra.py").write_text("BETA = 2\n")
    grown = {"demo": P.Suite(suites["demo"].outputs, (*suites["demo"].inputs, "src/extra.py"), CMD)}
    assert _kinds(P.check(root=root, suites=grown)) == [("stale input", "src/extra.py")]
    gone = {"demo": P.Suite(suites["demo"].outputs, (*suites["demo"].inputs, "src/renamed.py"), CMD)}
    assert ("missing input", "src/renamed.py") in _kinds(P.check(root=root, suites=gone))


def test_a_rerender_refreshes_only_the_wording_inputs(tree):
    root, suites = tree
    with pytest.raises(ValueError, match="no record of the run"):
        P.record("demo", rerender=True, root=root, suites=suites)
    P.record("demo", root=root, suites=suites)
    (root / "src/words.py").write_text("VERDICT = 'direction holds, not significant'\n")
    (root / "src/method.py").write_text("ALPHA = 2\n")
    (root / P.RESULTS / "demo.md").write_text("| a | 1 | reworded |\n")
    entry = P.record("demo", rerender=True, argv=["/x/benchmarks/demo.py", "render"], root=root, suites=suites)
    assert entry["rendered"]["command"] == "python -m benchmarks.demo render"
    # the rewritten table and its wording are recorded; the method changed after the run: still stale
    assert _kinds(P.check(root=root, suites=suites)) == [("stale input", "src/method.py")]


def test_smoke_runs_and_other_out_dirs_do_not_record(tree, monkeypatch):
    from types import SimpleNamespace

    import os
    import time

    root, suites = tree
    for p in suites["demo"].inputs:  # written before this process (the "run") started
        os.utime(root / p, (time.time() - 3600, time.time() - 3600))
    monkeypatch.setattr(P, "ROOT", root)
    monkeypatch.setattr(P, "SUITES", suites)
    monkeypatch.setattr(P, "PARTS", {("demo", "all"): ("demo",)})
    monkeypatch.setattr(P, "SEEDED", ("demo",))
    monkeypatch.setenv("FACELAB_FAST", "1")
    assert P.after_run("demo", SimpleNamespace(out=root / P.RESULTS)) == []
    monkeypatch.delenv("FACELAB_FAST")
    assert P.after_run("demo", SimpleNamespace(out=root / P.RESULTS, ta_quick=True)) == []
    assert P.after_run("demo", SimpleNamespace(out=root / "elsewhere")) == []
    assert not (root / P.RECORD).exists()
    assert P.after_run("demo", SimpleNamespace(out=root / P.RESULTS), argv=["/x/benchmarks/__main__.py", "demo"]) == ["demo"]
    assert P.check(root=root, suites=suites) == []
    # a suite made once per seed records its seeds: the default when none were given, else the given ones
    assert json.loads((root / P.RECORD).read_text())["demo"]["seeds"] == [0, 1, 2]
    assert P.after_run("demo", SimpleNamespace(out=root / P.RESULTS, seeds=[3, 4]),
                       argv=["/x/benchmarks/__main__.py", "demo", "--seeds", "3", "4"]) == ["demo"]
    assert json.loads((root / P.RECORD).read_text())["demo"]["seeds"] == [3, 4]
    # a suite that has no seeds records none
    monkeypatch.setattr(P, "SEEDED", ())
    assert P.after_run("demo", SimpleNamespace(out=root / P.RESULTS), argv=["/x/benchmarks/__main__.py", "demo"]) == ["demo"]
    assert "seeds" not in json.loads((root / P.RECORD).read_text())["demo"]


def _git(root, *args):
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=root, check=True,
                   capture_output=True)


def test_stamp_only_when_no_input_changed_after_the_outputs(tree):
    root, suites = tree
    _git(root, "init", "-q")
    _git(root, "add", ".")
    _git(root, "commit", "-q", "-m", "results")
    first = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True).stdout.strip()
    (root / "README").write_text("unrelated\n")
    _git(root, "add", "README")
    _git(root, "commit", "-q", "-m", "unrelated")
    entry = P.stamp("demo", root=root, suites=suites)
    assert entry["commit"] == first and "without rerunning" in entry["note"]
    assert P.check(root=root, suites=suites) == []

    # an uncommitted edit to an input: the stamp vouches for the committed content only, check() sees the edit
    (root / "src/method.py").write_text("ALPHA = 3\n")
    P.stamp("demo", root=root, suites=suites)
    assert _kinds(P.check(root=root, suites=suites)) == [("stale input", "src/method.py")]

    _git(root, "commit", "-q", "-am", "method changed after the table")
    with pytest.raises(ValueError, match=r"stale.*src/method\.py.*method changed after the table.*python -m benchmarks demo"):
        P.stamp("demo", root=root, suites=suites)


def test_stamp_with_an_excused_commit_names_it(tree):
    root, suites = tree
    _git(root, "init", "-q")
    _git(root, "add", ".")
    _git(root, "commit", "-q", "-m", "results")
    (root / "src/method.py").write_text("ALPHA = 1\nrecord_provenance()\n")
    _git(root, "commit", "-q", "-am", "hook")
    hook = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True).stdout.strip()
    (root / "src/words.py").write_text("VERDICT = 'reversed'\n")
    _git(root, "commit", "-q", "-am", "wording")
    with pytest.raises(ValueError, match="wording"):  # the excuse covers the hook, not the wording
        P.stamp("demo", excuse=[hook[:8]], root=root, suites=suites)
    _git(root, "revert", "--no-edit", "HEAD")
    entry = P.stamp("demo", excuse=[hook[:8]], root=root, suites=suites)
    assert "excused" in entry["note"] and "hook" in entry["note"]
    assert P.check(root=root, suites=suites) == []


def test_an_input_saved_during_the_run_is_not_vouched_for(tree):
    import os
    import time

    root, suites = tree
    start = time.time() - 60
    for p in suites["demo"].inputs:
        os.utime(root / p, (start - 60, start - 60))  # as they were when the run began
    os.utime(root / "src/method.py", (start + 30, start + 30))  # saved by someone else mid-run
    entry = P.record("demo", started=start, root=root, suites=suites)
    assert entry["changed_during_run"] == ["src/method.py"]
    assert _kinds(P.check(root=root, suites=suites)) == [("stale input", "src/method.py")]
    assert P._process_start() is None or P._process_start() <= time.time()


LOCK_TEXT = """\
#    make lock
#
mkdocs==1.6.1
    # via mkdocs-jupyter
numpy==2.4.6
    # via
    #   -r requirements.txt
    #   scipy
    #   torchvision
scipy==1.17.1
    # via scikit-image
scikit-image==0.26.0
    # via -r requirements.txt
torch==2.14.1
    # via -r requirements.txt
"""


def test_the_lock_enters_as_the_pins_that_compute_the_numbers():
    pins = P.lock_pins(LOCK_TEXT, roots=("torch", "scikit-image"))
    assert pins == "numpy==2.4.6\nscikit-image==0.26.0\nscipy==1.17.1\ntorch==2.14.1\n"  # numpy via scipy
    docs_tool_added = LOCK_TEXT + "mkdocs-jupyter==0.26.0\n    # via -r requirements-dev.txt\n"
    assert P.digest("requirements-lock.txt#numeric", docs_tool_added.encode()) == \
        P.digest("requirements-lock.txt#numeric", LOCK_TEXT.encode())
    torch_moved = LOCK_TEXT.replace("torch==2.14.1", "torch==2.15.0")
    assert P.digest("requirements-lock.txt#numeric", torch_moved.encode()) != \
        P.digest("requirements-lock.txt#numeric", LOCK_TEXT.encode())


def test_a_long_run_records_the_commit_it_started_from(tree):
    import os
    import time

    root, suites = tree
    _git(root, "init", "-q")
    _git(root, "add", ".")
    old = time.time() - 7200
    env = dict(os.environ, GIT_COMMITTER_DATE=f"@{int(old)} +0000", GIT_AUTHOR_DATE=f"@{int(old)} +0000")
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "start"], cwd=root,
                   env=env, check=True)
    start_commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True).stdout.strip()
    (root / "README").write_text("landed during the run\n")
    _git(root, "add", "README")
    _git(root, "commit", "-q", "-m", "during")
    for p in suites["demo"].inputs:
        os.utime(root / p, (old, old))
    entry = P.record("demo", started=time.time() - 3600, root=root, suites=suites)
    assert entry["commit"] == start_commit and entry["commit_at_end"] != start_commit
