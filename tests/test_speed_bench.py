"""benchmarks/speed.py's A/B mode: REV's code really runs from its own worktree, the worktree goes
away afterwards, and the table's medians and ratios are the runs'."""

import subprocess
import sys

import pytest

from tests.tiny import load_script

speed = load_script("speed")


def _git_ok() -> bool:
    probe = ["git", "-C", str(speed.ROOT), "rev-parse", "HEAD"]
    return subprocess.run(probe, capture_output=True).returncode == 0


@pytest.mark.skipif(not _git_ok(), reason="needs the repository's git history")
def test_against_runs_rev_from_its_worktree_and_removes_it(tmp_path):
    marker = tmp_path / "imported_from.txt"
    code = (
        "import pathlib, vgfm_bayes, vgfm_bayes.zoo as z; "
        f"pathlib.Path({str(marker)!r}).write_text(vgfm_bayes.__file__ + '\\n' + z.__file__)"
    )
    with speed.worktree("HEAD") as tree:
        assert (tree / "vgfm_bayes" / "__init__.py").is_file()
        assert speed.wall([sys.executable, "-c", code], tree) > 0
        # REV's package and REV's zoo configs, not the installed working tree's
        assert all(f.startswith(str(tree)) for f in marker.read_text().split("\n"))
        speed.wall([sys.executable, "-c", code])
        assert all(f.startswith(str(speed.ROOT)) for f in marker.read_text().split("\n"))
    listed = subprocess.run(
        ["git", "-C", str(speed.ROOT), "worktree", "list"], capture_output=True, text=True
    ).stdout
    assert str(tree) not in listed
    assert not tree.exists()


def test_table_reports_medians_runs_and_ratio_per_tree():
    times = {}
    for label, scale in (("this tree", 1.0), ("v0", 2.0)):
        times["help", label] = [0.1 * scale] * 3
        times["imports", label] = [3.0 * scale] * 3
        times["point", label] = [10.0 * scale, 12.0 * scale, 11.0 * scale]
        times["ensemble", label] = [15.0 * scale, 17.0 * scale, 30.0 * scale]
    lines = speed.table(times, ["this tree", "v0"], "simulation_gene")
    assert lines[0] == "| what | this tree, median s | v0, median s |"
    point = next(line for line in lines if "--model point" in line)
    assert "| 11.00 (10.0, 12.0, 11.0) | 22.00 (20.0, 24.0, 22.0) |" in point
    assert lines[-2] == "| ensemble / point (target <= 1.5) | 1.55 | 1.55 |"  # 17 / 11
    # run by run: 15 / 10, 17 / 12, 30 / 11
    run_by_run = "1.50 (1.50, 1.42, 2.73)"
    assert (
        lines[-1]
        == f"| ensemble / point, run by run: median (runs) | {run_by_run} | {run_by_run} |"
    )


@pytest.mark.skipif(not _git_ok(), reason="needs the repository's git history")
def test_against_an_unknown_revision_says_so():
    with pytest.raises(SystemExit, match="--against no-such-rev"):
        with speed.worktree("no-such-rev"):
            pass
