"""Where users wait (issue 13): start-up, the ensemble against the point head, mouse-size SROT.

    python benchmarks/speed.py [--runs 3] [--data simulation_gene] [--md F]

Prints one Markdown table, every number a wall time on this machine (run it on an idle one):

- ``vgfm-bayes --help`` (the whole process) and the start-up of a fit: the whole process of
  ``python -c "import vgfm_bayes.commands"`` (everything a command imports before it reads data);
- ``vgfm-bayes fit DATA --model point`` and ``--model ensemble``, whole processes, alternating
  (point, ensemble, point, ...) ``--runs`` times each; the medians and their ratio;
- the mouse_hematopoiesis SROT solve of its larger interval (3,781 x 5,788 cells, the
  published settings eps 0.03, tau 10), in this process after one warm-up solve of a small
  problem (so torch's one-off start costs are not counted).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def wall(cmd: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


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


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--data", default="simulation_gene")
    ap.add_argument("--md", type=Path, default=None)
    args = ap.parse_args(argv)
    exe = [sys.executable, "-m", "vgfm_bayes"]
    rows = []
    helps = [wall([*exe, "--help"]) for _ in range(args.runs)]
    imports = [wall([sys.executable, "-c", "import vgfm_bayes.commands"]) for _ in range(args.runs)]
    rows.append(("`vgfm-bayes --help`", statistics.median(helps), ""))
    rows.append(("fit start-up (imports of a command)", statistics.median(imports), ""))
    times: dict[str, list[float]] = {"point": [], "ensemble": []}
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.runs):
            for head in times:
                out = str(Path(tmp) / f"{head}{i}")
                times[head].append(wall([*exe, "fit", args.data, "--model", head, "--out", out]))
    point, ens = (statistics.median(times[h]) for h in ("point", "ensemble"))
    runs = ", ".join(f"{t:.1f}" for t in times["point"])
    rows.append((f"fit {args.data} --model point (whole process)", point, f"runs {runs}"))
    runs = ", ".join(f"{t:.1f}" for t in times["ensemble"])
    rows.append((f"fit {args.data} --model ensemble (whole process)", ens, f"runs {runs}"))
    rows.append(("ensemble / point", ens / point, "ratio of the medians (target <= 1.5)"))
    srot_s, evals = mouse_srot()
    rows.append(("mouse SROT 3,781 x 5,788 (eps 0.03, tau 10)", srot_s, f"{evals} evaluations"))
    lines = ["| what | median s | notes |", "|---|---:|---|"]
    lines += [f"| {name} | {value:.2f} | {note} |" for name, value, note in rows]
    text = f"Speed, median of {args.runs} runs (ensemble and point alternating)\n\n"
    text += "\n".join(lines) + "\n"
    print(text)
    if args.md:
        args.md.write_text(text)


if __name__ == "__main__":
    main()
