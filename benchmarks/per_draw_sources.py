"""Why posterior draws fit the snapshots worse than the point head (issue 10, per-draw W1).

    python benchmarks/per_draw_sources.py [--data FILE] [--seed 0] [--samples 40] [--md F]

Default data: ../shared/data/benchmarks/simulation_gene_data.csv, given as a file (SROT settings
chosen by the held-out-snapshot score). Every fit uses the zoo config of its head; one table row
per variant, in-sample W1 per draw (each draw scored alone, then averaged), W1 of the pooled
predictive and RME, all exact (metrics.score):

- point: the reference;
- ensemble as in the zoo (each member its own bootstrap of the cells for its SROT plans, members
  spread over the score's mixture of settings), without the bootstrap, at one fixed setting (the
  score's choice, so no spread over settings), and with neither;
- last_layer as in the zoo, then the same fitted model with parts of its posterior switched off:
  the Gaussian around each component mean only (no component shifts), the component shifts only
  (no Gaussian), and the shifts of one network's last layer only (velocity or growth). The
  components are bootstrap resamples x SROT settings (model/laplace.py ``mixture_offsets``).

The point of the table is where the draws' extra W1 comes from, not a tuning of any setting.
"""

from __future__ import annotations

import argparse
import contextlib
import tempfile
from pathlib import Path

import torch

from vgfm_bayes import VGFM
from vgfm_bayes.cli import main as cli
from vgfm_bayes.metrics import score

SHARED = Path(__file__).resolve().parents[2] / "shared"
DEFAULT_DATA = SHARED / "data/benchmarks/simulation_gene_data.csv"


def fit(data: str, head: str, seed: int, out: Path, config: str = "") -> VGFM:
    args = ["fit", data, "--model", head, "--seed", str(seed), "--quiet", "--out", str(out)]
    if config:
        cfg = out.with_suffix(".toml")
        cfg.write_text(config)
        args += ["--config", str(cfg)]
    cli(args)
    return VGFM.load(out)


def row(name: str, model: VGFM, samples: int, seed: int) -> dict:
    torch.manual_seed(seed)
    out = score(model.simulate(samples=samples), model.data)
    return {
        "variant": name,
        "per_draw": out["w1_per_draw_mean"],
        "pooled": out["w1_pooled_mean"],
        "rme": out["rme_mean"],
    }


@contextlib.contextmanager
def switched_off(laplace, *, gaussian=False, shifts=()):
    """Temporarily zero the Gaussian factors and/or the mixture shifts of the nets in
    ``shifts``."""
    names = ("v_offsets", "g_offsets", "v_scale_tril", "g_scale_tril", "joint_scale_tril")
    saved = {n: getattr(laplace, n).clone() for n in names}
    try:
        if gaussian:
            for n in ("v_scale_tril", "g_scale_tril", "joint_scale_tril"):
                getattr(laplace, n).zero_()
        for net in shifts:
            getattr(laplace, f"{net}_offsets").zero_()
        yield
    finally:
        for n, v in saved.items():
            setattr(laplace, n, v)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--data", default=str(DEFAULT_DATA))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--samples", type=int, default=40, help="draws of last_layer (ensemble: 5)")
    ap.add_argument("--md", type=Path, default=None)
    args = ap.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        run = Path(tmp)
        point = fit(args.data, "point", args.seed, run / "point")
        rows.append(row("point", point, 1, args.seed))
        tuned = point.settings
        fixed = f"eps = {tuned['eps']}\ntau = {tuned['tau']}\nnormalize_cost = true\n"
        for name, config in (
            ("ensemble (zoo)", ""),
            ("ensemble, no bootstrap", "bootstrap = false\n"),
            ("ensemble, one setting", fixed),
            ("ensemble, one setting, no bootstrap", fixed + "bootstrap = false\n"),
        ):
            model = fit(args.data, "ensemble", args.seed, run / f"e{len(rows)}", config)
            rows.append(row(name, model, args.samples, args.seed))
        ll = fit(args.data, "last_layer", args.seed, run / "last_layer")
        lap = ll.posterior.guide.laplace
        rows.append(row("last_layer (zoo)", ll, args.samples, args.seed))
        variants = (
            ("last_layer, Gaussian only (no component shifts)", dict(shifts=("v", "g"))),
            ("last_layer, component shifts only (no Gaussian)", dict(gaussian=True)),
            ("last_layer, velocity shifts only", dict(gaussian=True, shifts=("g",))),
            ("last_layer, growth shifts only", dict(gaussian=True, shifts=("v",))),
        )
        for name, off in variants:
            with switched_off(lap, **off):
                rows.append(row(name, ll, args.samples, args.seed))
    ref = rows[0]["per_draw"]
    lines = [
        f"Sources of the draws' in-sample W1, {Path(args.data).name}, seed {args.seed} "
        f"(point W1 {ref:.4f})",
        "",
        "| variant | W1 per draw | / point | W1 pooled | RME |",
        "|---|---:|---:|---:|---:|",
    ]
    lines += [
        f"| {r['variant']} | {r['per_draw']:.4f} | {r['per_draw'] / ref:.2f} | "
        f"{r['pooled']:.4f} | {r['rme']:.4f} |"
        for r in rows
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.md:
        args.md.write_text(text)


if __name__ == "__main__":
    main()
