"""Where users wait (issue 13): start-up, the ensemble against the point head, mouse-size SROT.

    python benchmarks/speed.py [--runs 3] [--data simulation_gene] [--md F] [--against REV]

Prints one Markdown table, every number a wall time on this machine (run it on an idle one):

- ``vgfm-bayes --help`` (the whole process) and the start-up of a fit: the whole process of
  ``python -c "import vgfm_bayes.commands"`` (everything a command imports before it reads data);
- ``vgfm-bayes fit DATA --model point`` and ``--model ensemble``, whole processes, alternating
  (point, ensemble, point, ...) ``--runs`` times each; the medians and their ratio;
- the mouse_hematopoiesis SROT solve of its larger interval (3,781 x 5,788 cells, the
  published settings eps 0.03, tau 10), in this process after one warm-up solve of a small
  problem (so torch's one-off start costs are not counted).

This machine's speed drifts by 20-40% within a session, so a change is timed against the code
before it, not against an old table: ``--against REV`` checks REV out into a temporary git worktree
and runs every process-level row for both trees, alternating run by run (this tree, REV, this
tree, ...), with a column per tree (the mouse SROT row is this tree's only).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HEADS = ("point", "ensemble")


def wall(cmd: list[str], tree: Path = ROOT) -> float:
    """Seconds of one whole process in ``tree``, with its vgfm_bayes first on the path."""
    env = {**os.environ, "PYTHONPATH": str(tree)}
    start = time.perf_counter()
    subprocess.run(
        cmd, check=True, cwd=tree, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    return time.perf_counter() - start


@contextlib.contextmanager
def worktree(rev: str) -> Iterator[Path]:
    """This repository at ``rev``, checked out into a temporary git worktree (removed after)."""
    with tempfile.TemporaryDirectory(prefix="vgfm-speed-") as tmp:
        path = Path(tmp) / "tree"
        git = ["git", "-C", str(ROOT), "worktree"]
        made = subprocess.run([*git, "add", "--detach", str(path), rev], capture_output=True)
        if made.returncode != 0:
            raise SystemExit(f"--against {rev}: {made.stderr.decode().strip()}")
        # pyproject maps models/ to vgfm_bayes.zoo; an editable install maps it to the checkout's
        # models/, which REV's code would then read, unless REV's package has its own zoo
        zoo = path / "vgfm_bayes" / "zoo"
        if not zoo.exists():
            zoo.symlink_to(path / "models", target_is_directory=True)
        try:
            yield path
        finally:
            subprocess.run([*git, "remove", "--force", str(path)], capture_output=True)


def process_times(trees: dict[str, Path], data: str, runs: int) -> dict[tuple[str, str], list]:
    """Wall seconds per (row, tree): --help, a command's imports, point and ensemble fits; the
    trees alternate inside every run, so a drift of the machine's speed hits them alike."""
    exe = [sys.executable, "-m", "vgfm_bayes"]
    times: dict[tuple[str, str], list[float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(runs):
            for label, tree in trees.items():
                jobs = {
                    "help": [*exe, "--help"],
                    "imports": [sys.executable, "-c", "import vgfm_bayes.commands"],
                }
                for head in HEADS:
                    out = str(Path(tmp) / f"{label}-{head}{i}")
                    jobs[head] = [*exe, "fit", data, "--model", head, "--out", out]
                for row, cmd in jobs.items():
                    times.setdefault((row, label), []).append(wall(cmd, tree))
    return times


def mouse_srot() -> tuple[float, int]:
    import torch

    from vgfm_bayes.data.datasets import load
    from vgfm_bayes.ot.srot import solve_srot

    tc = load("mouse_hematopoiesis")
    solve_srot(torch.randn(50, 2), torch.randn(60, 2), 0.1, 1.0)  # one-off start costs
    k = max(range(tc.n_times - 1), key=lambda i: len(tc.x[i]) * len(tc.x[i + 1]))
    x, y = torch.tensor(tc.x[k]), torch.tensor(tc.x[k + 1])
    ratio = float(tc.masses[k + 1] / tc.masses[k] * len(x) / len(y))
    b = torch.full((len(y),), ratio, dtype=torch.float64)
    start = time.perf_counter()
    res = solve_srot(x, y, 0.03, 10.0, b=b)
    return time.perf_counter() - start, res.n_evals


def table(times: dict[tuple[str, str], list], labels: list[str], data: str) -> list[str]:
    """Markdown rows: the median per tree (runs in brackets for the fits) and the ratio."""
    names = {
        "help": "`vgfm-bayes --help`",
        "imports": "fit start-up (imports of a command)",
        "point": f"fit {data} --model point (whole process)",
        "ensemble": f"fit {data} --model ensemble (whole process)",
    }
    med = {key: statistics.median(v) for key, v in times.items()}
    lines = [
        "| what | " + " | ".join(f"{label}, median s" for label in labels) + " |",
        "|---|" + "---:|" * len(labels),
    ]
    for row, name in names.items():
        cells = []
        for label in labels:
            runs = ", ".join(f"{t:.1f}" for t in times[row, label])
            cells.append(f"{med[row, label]:.2f}" + (f" ({runs})" if row in HEADS else ""))
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    ratios = [f"{med['ensemble', label] / med['point', label]:.2f}" for label in labels]
    lines.append("| ensemble / point (target <= 1.5) | " + " | ".join(ratios) + " |")
    # each run's ensemble fit over the point fit just before it: a drift of the machine's speed
    # between runs moves both, so this is steadier than the ratio of the medians
    per_run = []
    for label in labels:
        pairs = [
            e / p for p, e in zip(times["point", label], times["ensemble", label], strict=True)
        ]
        runs = ", ".join(f"{r:.2f}" for r in pairs)
        per_run.append(f"{statistics.median(pairs):.2f} ({runs})")
    lines.append("| ensemble / point, run by run: median (runs) | " + " | ".join(per_run) + " |")
    return lines


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--data", default="simulation_gene")
    ap.add_argument("--md", type=Path, default=None)
    ap.add_argument("--against", metavar="REV", default=None, help="also time REV, alternating")
    args = ap.parse_args(argv)
    with contextlib.ExitStack() as stack:
        trees = {"this tree": ROOT}
        if args.against:
            trees[args.against] = stack.enter_context(worktree(args.against))
        # a file's path must mean the same file from every tree's folder
        data = str(Path(args.data).resolve()) if Path(args.data).exists() else args.data
        times = process_times(trees, data, args.runs)
    lines = table(times, list(trees), args.data)
    srot_s, evals = mouse_srot()
    mouse = f"{srot_s:.2f} ({evals} evaluations)"
    lines.append("| mouse SROT 3,781 x 5,788 (eps 0.03, tau 10), this tree | " + mouse)
    lines[-1] += " |" + " - |" * (len(trees) - 1)
    order = ", ".join(trees)
    text = f"Speed, median of {args.runs} runs (alternating: {order}; point, ensemble)\n\n"
    text += "\n".join(lines) + "\n"
    print(text)
    if args.md:
        args.md.write_text(text)


if __name__ == "__main__":
    main()
