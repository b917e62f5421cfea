"""Does the held-out-snapshot SROT score (ot/tune.py) point where the growth targets are best?

On the ground-truth simulators (both kinds) this prints, per setting of the tuning grid, the
score and weight (from the snapshots alone) beside the quality of the SROT growth targets that
setting gives on the full data, scored against the truth: RMSE of gamma_i = log(r_i) / dt
against the true growth of the source cells, and their Spearman correlation. A last table puts,
per seed, the setting of the lowest score and the setting used (ot/tune.py: one-standard-error
rule) beside the best setting's target RMSE. No network is trained.

    python benchmarks/tune_check.py --seeds 0 1 2 [--kinds separated reweight]
"""

from __future__ import annotations

import argparse

import numpy as np

from vgfm_bayes.data import simulate
from vgfm_bayes.metrics import srot_target_quality
from vgfm_bayes.ot.tune import tune_srot


def target_quality(gt, eps: float, tau: float) -> tuple[float, float]:
    """(RMSE, Spearman) of the SROT growth targets against the true growth, all intervals."""
    q = srot_target_quality(gt.data, gt.growth, eps, tau)
    return q["rmse"], q["spearman"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--kinds", nargs="+", default=["separated", "reweight"])
    args = ap.parse_args()
    summary = []
    for kind in args.kinds:
        for seed in args.seeds:
            gt = simulate(kind, seed=seed)
            res = tune_srot(gt.data)
            print(
                f"\n## {kind}, seed {seed}: best eps={res.best['eps']:g} tau={res.best['tau']:g}"
                f" (tuning {res.seconds:.2f} s)\n"
            )
            print("| eps | tau | score | weight | target RMSE | target Spearman |")
            print("|---|---|---|---|---|---|")
            quality = {}
            for r in sorted(res.rows, key=lambda r: (r["eps"], r["tau"])):
                rmse, rho = target_quality(gt, r["eps"], r["tau"])
                quality[r["eps"], r["tau"]] = rmse
                print(
                    f"| {r['eps']:g} | {r['tau']:.3g} | {r['score']:.4f} | {r['weight']:.3f} |"
                    f" {rmse:.3f} | {rho:.3f} |"
                )
            best_rmse = min(quality, key=quality.get)
            low = min((r for r in res.rows if r["ok"]), key=lambda r: r["score"])
            used = (res.best["eps"], res.best["tau"])
            summary.append(
                f"| {kind} | {seed} | {low['eps']:g} / {low['tau']:.3g} |"
                f" {quality[low['eps'], low['tau']]:.3f} | {used[0]:g} / {used[1]:.3g} |"
                f" {quality[used]:.3f} | {quality[best_rmse]:.3f} |"
            )
            scores = np.array([r["score"] for r in res.rows if r["ok"]])
            spread = (scores.max() - scores.min()) / scores.min()
            print(
                f"\nlowest target RMSE at eps={best_rmse[0]:g} tau={best_rmse[1]:.3g}; "
                f"score range (max - min) / min = {spread:.3f}"
            )
    print("\n## Target RMSE of the setting used\n")
    print(
        "| kind | seed | lowest score (eps / tau) | its RMSE | used (eps / tau) | its RMSE |"
        " best RMSE |"
    )
    print("|---|---|---|---|---|---|---|")
    print("\n".join(summary))


if __name__ == "__main__":
    main()
