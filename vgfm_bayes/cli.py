"""Command line: ``vgfm-bayes fit|tune|evaluate|simulate|growth|demo|bench`` (DESIGN 6)."""

from __future__ import annotations

import argparse
import logging
import sys

log = logging.getLogger("vgfm_bayes")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="vgfm-bayes", description=__doc__)
    p.add_argument("--debug", action="store_true", help="show full tracebacks on errors")
    sub = p.add_subparsers(dest="command", required=True)

    def common(sp, data_opts=False):
        sp.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
        sp.add_argument("--quiet", action="store_true", help="no progress bars")
        if data_opts:
            sp.add_argument(
                "--time-key",
                default=None,
                help="time column (CSV, default 'samples') or obs key (.h5ad); .h5ad labels may "
                "be numbers, strings with one number ('day2', 'E7.5') or an ordered categorical",
            )
            sp.add_argument(
                "--rep",
                default=None,
                help=".h5ad: obsm key (e.g. X_pca, X_umap) or X (dense or sparse); default "
                "X_pca when present, else it must be given",
            )
            sp.add_argument(
                "--time-map",
                default=None,
                metavar="MAP",
                help=".h5ad: time of each label, overriding how labels are read: "
                "'day0=0,day1=1.5,...' or a JSON file {\"day0\": 0, ...}",
            )

    sp = sub.add_parser("fit", help="train a model and save a run folder")
    sp.add_argument("data", nargs="?", help="CSV / .h5ad file or bundled data set name")
    sp.add_argument("--model", default="point", help="zoo head name or config path")
    sp.add_argument("--out", default=None, help="run folder to create")
    sp.add_argument(
        "--resume", default=None, metavar="RUN", help="continue an interrupted fit in RUN"
    )
    sp.add_argument(
        "--masses",
        default=None,
        help="relative population size per time point: '1,1.3,2' or a file of numbers "
        "(default: cell counts)",
    )
    sp.add_argument("--checkpoint-every", type=int, default=None, help="steps between checkpoints")
    sp.add_argument("--seed", type=int, default=0)
    sp.add_argument("--hold-out", type=int, default=None, help="time index to leave out")
    sp.add_argument("--config", default=None, help="TOML / JSON overrides")
    sp.add_argument("--samples", type=int, default=20, help="posterior draws for evaluation")
    common(sp, data_opts=True)
    sp.set_defaults(command="fit")

    sp = sub.add_parser(
        "tune",
        help="score SROT settings on held-out snapshots (no training); DATA or a fitted RUN",
    )
    sp.add_argument("data", help="CSV / .h5ad file, bundled data set name, or run folder")
    sp.add_argument("--hold-out", type=int, default=None, help="time index left out of the fit")
    sp.add_argument("--masses", default=None, help="as for fit")
    sp.add_argument("--seed", type=int, default=0)
    sp.add_argument("--out", default=None, help="also write the table as JSON here")
    common(sp, data_opts=True)
    sp.set_defaults(command="tune")

    sp = sub.add_parser("evaluate", help="score a run; writes RUN/metrics.json")
    sp.add_argument("run")
    sp.add_argument("--data", default=None, help="other data to score against")
    sp.add_argument("--samples", type=int, default=20)
    common(sp, data_opts=True)
    sp.set_defaults(command="evaluate")

    sp = sub.add_parser("simulate", help="posterior predictive trajectories to .npz")
    sp.add_argument("run")
    sp.add_argument("--out", required=True)
    sp.add_argument("--samples", type=int, default=100)
    common(sp)
    sp.set_defaults(command="simulate")

    sp = sub.add_parser("growth", help="growth-rate posterior at given points")
    sp.add_argument("run")
    sp.add_argument("--points", required=True, help="CSV of coordinates")
    sp.add_argument("--time", type=float, required=True)
    sp.add_argument("--out", required=True)
    sp.add_argument("--samples", type=int, default=200)
    common(sp)
    sp.set_defaults(command="growth")

    sp = sub.add_parser(
        "demo",
        help="fit the point head and a Bayesian head on the bundled simulated gene data, "
        "evaluate both, and write a report with their uncertainty",
    )
    sp.add_argument("--out", default="demo_out")
    sp.add_argument("--dataset", default="simulation_gene")
    sp.add_argument("--model", default="point", help="the baseline head (default point)")
    sp.add_argument(
        "--bayes-head",
        default="ensemble",
        help="the Bayesian head whose uncertainty the figures show (default ensemble; "
        "'none': the baseline only)",
    )
    sp.add_argument(
        "--threads",
        type=int,
        default=0,
        help="torch threads (default 0: torch's own; 1 is much faster on a machine shared with "
        "other jobs)",
    )
    sp.add_argument("--seed", type=int, default=0)
    sp.add_argument("--quick", action="store_true", help="a few steps only (smoke test)")
    common(sp)
    sp.set_defaults(command="demo")

    sp = sub.add_parser(
        "bench",
        help="benchmark suite: data sets x heads x hold-outs x seeds (torchrun: spread over ranks)",
    )
    sp.add_argument("--out", default="bench_out", help="folder for bench.json and bench.md")
    sp.add_argument(
        "--datasets",
        nargs="+",
        default=None,
        help="bundled names (simulation_gene dyngen mouse_hematopoiesis gaussian_10d ...), "
        "gaussian_<D>d, simulator, CSV paths, or 'all' (every bundled file + simulator); "
        "default: the three with published numbers",
    )
    sp.add_argument("--heads", "--models", dest="heads", nargs="+", default=None)
    sp.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    sp.add_argument(
        "--hold-out",
        "--hold-outs",
        dest="hold_outs",
        nargs="+",
        type=lambda v: None if v == "none" else int(v),
        default=[None],
        help="time indices to leave out, one fit each ('none' = fit all; default none)",
    )
    sp.add_argument("--quick", action="store_true", help="a few steps per fit (smoke test)")
    sp.add_argument(
        "--samples", type=int, default=None, help="posterior draws (default 100, quick 20)"
    )
    sp.add_argument("--config", default=None, help="TOML / JSON overrides for every fit")
    sp.add_argument(
        "--tables-only", action="store_true", help="only rewrite bench.md from OUT/bench.json"
    )
    common(sp)
    sp.set_defaults(command="bench")
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if not getattr(args, "quiet", False) else logging.WARNING,
        format="%(message)s",
    )
    from . import commands  # the heavy imports (torch, Pyro, POT) only once a command runs
    from .infer import TrainingInterrupted

    try:
        getattr(commands, args.command)(args)
    except TrainingInterrupted as err:
        run = getattr(args, "out", None)
        print(
            f"vgfm-bayes: {err}; checkpoint saved in {run}; continue with: "
            f"vgfm-bayes fit --resume {run}",
            file=sys.stderr,
        )
        return 128 + (err.signum or 2)
    except KeyboardInterrupt:
        print("vgfm-bayes: interrupted", file=sys.stderr)
        return 130
    except commands.USER_ERRORS as err:
        if args.debug:
            raise
        print(f"vgfm-bayes: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
