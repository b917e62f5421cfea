"""Command line: ``vgfm-bayes fit|tune|evaluate|simulate|growth|demo|bench`` (DESIGN 6)."""

from __future__ import annotations

import argparse
import csv
import io
import json
import logging
import sys
from pathlib import Path

import numpy as np

from .data import DataError, read_masses, read_time_map
from .estimator import VGFM, RunError
from .infer import (
    CheckpointError,
    ConfigError,
    FitConfig,
    TrainingError,
    TrainingInterrupted,
    atomic_write,
    distributed,
    read_config_file,
)
from .ot import SROTError

log = logging.getLogger("vgfm_bayes")

# Errors that are the user's to fix: one line, no traceback (unless --debug).
USER_ERRORS = (
    DataError,
    ConfigError,
    RunError,
    CheckpointError,
    SROTError,
    TrainingError,
    FileExistsError,
    FileNotFoundError,
    ValueError,
)


def _fit(args) -> None:
    from . import zoo

    if args.resume:
        if args.data is not None:
            raise ValueError("give either DATA or --resume RUN, not both")
        out = Path(args.resume)
        if args.out is not None and Path(args.out) != out:
            raise ValueError("--resume continues RUN in place; leave out --out")
        args.out = str(out)
        model = VGFM.resume(out, progress=not args.quiet)
    else:
        if args.data is None:
            raise ValueError("fit needs DATA (a CSV / .h5ad file or bundled data set name)")
        if args.out is None:
            raise ValueError("fit needs --out RUN (a new run folder)")
        config = FitConfig.from_dict(zoo.zoo_config(args.model))
        if args.config:
            config = config.updated(**read_config_file(args.config))  # only the keys it sets
        overrides = {
            "seed": args.seed,
            "device": args.device,
            "checkpoint_every": args.checkpoint_every,
        }
        out = Path(args.out)
        if out.exists() and (not out.is_dir() or any(out.iterdir())):
            raise FileExistsError(f"--out {out} already exists; choose a new run folder")
        masses = read_masses(args.masses)
        # under torchrun an ensemble's members are spread over the ranks; rank 0 saves
        with distributed.process_group(args.device) as several:
            overrides["device"] = distributed.rank_device(args.device)
            model = VGFM(config, **overrides)
            model.fit(
                args.data,
                hold_out=args.hold_out,
                time_key=args.time_key,
                rep=args.rep,
                masses=masses,
                time_map=read_time_map(args.time_map),
                progress=not args.quiet and distributed.is_main(),
                run_dir=None if several else out,
                distributed=several,
            )
        if model.is_partial:
            return
    metrics = model.evaluate(samples=args.samples)
    metrics["seconds"] = model.history.seconds
    model.save(out, extra={"metrics.json": json.dumps(metrics, indent=2)})
    s = model.history.seconds
    print(
        f"fitted {model.config.head} on {model.data.name} in {sum(s.values()):.1f} s "
        f"(srot {s['srot']:.1f}, warm-up {s['warmup']:.1f}, joint {s['joint']:.1f}); "
        f"W1 {metrics['w1_mean']:.4f}, RME {metrics['rme_mean']:.4f}; run saved to {out}"
    )


def _write_text(path: Path, text: str) -> None:
    atomic_write(path, lambda fh: fh.write(text.encode()))


def peak_rss_mb() -> float:
    """This process's peak resident memory so far, in MB."""
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _tune(args) -> None:
    """Print the held-out-snapshot SROT score table of DATA (or the one a run recorded)."""
    from .data import load_data
    from .ot.tune import TuneResult, tune_srot

    src = Path(args.data)
    if (src / "config.json").is_file():
        meta = json.loads((src / "config.json").read_text())
        recorded = meta.get("resolved", {}).get("srot_tuning")
        if recorded is None:
            raise RunError(f"{src}: this run's SROT settings were given, not tuned (no table)")
        result = TuneResult.from_dict(recorded)
    else:
        masses = read_masses(args.masses) if args.masses else None
        data = load_data(
            args.data,
            time_key=args.time_key,
            rep=args.rep,
            masses=masses,
            time_map=read_time_map(args.time_map),
        )
        if args.hold_out is not None:
            data = data.without(args.hold_out)
        result = tune_srot(data, seed=args.seed)
    print(result.table() if result.rows else "(fewer than 3 snapshots: nothing to score)")
    best = result.best
    print(f"\nbest: eps={best['eps']:g} tau={best['tau']:g} (max-normalised cost)")
    print(
        "mixture: "
        + ", ".join(
            f"eps={m['eps']:g} tau={m['tau']:g} w={m['weight']:.3f}" for m in result.mixture()
        )
    )
    print(f"scored in {result.seconds:.2f} s")
    if args.out:
        text = json.dumps(result.to_dict(), indent=2).encode()
        atomic_write(Path(args.out), lambda fh: fh.write(text))
        log.info("wrote %s", args.out)


def _evaluate(args) -> None:
    model = VGFM.load(args.run, device=args.device)
    metrics = model.evaluate(
        data=args.data,
        samples=args.samples,
        time_key=args.time_key,
        rep=args.rep,
        time_map=read_time_map(args.time_map),
    )
    path = Path(args.run) / "metrics.json"
    _write_text(path, json.dumps(metrics, indent=2))
    print(f"W1 {metrics['w1_mean']:.4f}, RME {metrics['rme_mean']:.4f} -> {path}")


def _simulate(args) -> None:
    out = Path(args.out)
    if out.suffix != ".npz":
        raise ValueError(f"--out {out} must end in .npz")
    if out.exists():
        raise FileExistsError(f"--out {out} already exists; not overwriting it")
    model = VGFM.load(args.run, device=args.device)
    traj = model.simulate(samples=args.samples)
    atomic_write(
        out, lambda fh: np.savez_compressed(fh, times=traj.times, x=traj.x, log_w=traj.log_w)
    )
    print(
        f"wrote {traj.x.shape[0]} draw(s) x {len(traj.times)} times x {traj.x.shape[2]} cells "
        f"to {out}"
    )


def read_points(path: Path, dim: int, var_names: list[str]) -> tuple[np.ndarray, list, list]:
    """Points CSV: a header, then rows; uses the run's coordinate names if present, else all
    numeric columns. Returns (points (n, dim), header, rows)."""
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    with path.open(newline="") as fh:
        rows = [r for r in csv.reader(fh) if any(c.strip() for c in r)]
    if len(rows) < 2:
        raise DataError(f"{path}: needs a header line and at least one point")
    header = [h.strip() for h in rows[0]]
    cols = [header.index(v) for v in var_names] if set(var_names) <= set(header) else None
    if cols is None:
        cols = [j for j, h in enumerate(header) if h not in ("samples", "time", "t")]
    if len(cols) != dim:
        raise DataError(
            f"{path}: found {len(cols)} coordinate columns, the run has {dim} "
            f"({', '.join(var_names)})"
        )
    try:
        pts = np.array([[float(r[j]) for j in cols] for r in rows[1:]])
    except (ValueError, IndexError) as err:
        raise DataError(f"{path}: a coordinate is missing or not numeric ({err})") from err
    if not np.all(np.isfinite(pts)):
        raise DataError(f"{path}: points contain NaN or infinite values")
    return pts, header, rows[1:]


def _growth(args) -> None:
    out = Path(args.out)
    if out.exists():
        raise FileExistsError(f"--out {out} already exists; not overwriting it")
    model = VGFM.load(args.run, device=args.device)
    pts, header, rows = read_points(Path(args.points), model.fields.dim, list(model.data.var_names))
    table = model.growth(pts, args.time, samples=args.samples)
    buf = io.StringIO(newline="")
    w = csv.writer(buf)
    w.writerow([*header, *table.columns])
    for r, (_, s) in zip(rows, table.iterrows(), strict=True):
        w.writerow([*r, *(f"{v:.6g}" for v in s.to_numpy())])
    _write_text(out, buf.getvalue())
    print(f"wrote the growth posterior of {len(pts)} points at t={args.time:g} to {out}")


def _demo(args) -> None:
    from .demo import run_demo

    bayes = None if args.bayes_head.lower() == "none" else args.bayes_head
    m = run_demo(
        args.out,
        dataset=args.dataset,
        model=args.model,
        bayes=bayes,
        seed=args.seed,
        quick=args.quick,
        device=args.device,
        progress=not args.quiet,
        threads=args.threads or None,
    )
    for name, h in m["heads"].items():
        print(f"{name}: W1 {h['w1_mean']:.4f}, RME {h['rme_mean']:.4f}")
    print(f"report in {args.out}/report.md ({m['demo']['seconds_total']:.0f} s)")


def _bench(args) -> None:
    from .bench import run_bench, write_tables

    if args.tables_only:
        path = Path(args.out) / "bench.json"
        if not path.is_file():
            raise FileNotFoundError(f"--tables-only: no {path} to make tables from")
        write_tables(args.out, json.loads(path.read_text()))
        return
    run_bench(
        out=args.out,
        datasets=args.datasets,
        heads=args.heads,
        seeds=args.seeds,
        quick=args.quick,
        device=args.device,
        progress=not args.quiet,
        hold_outs=args.hold_outs,
        samples=args.samples,
        config=read_config_file(args.config) if args.config else None,  # only the keys it sets
    )


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
    sp.set_defaults(func=_fit)

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
    sp.set_defaults(func=_tune)

    sp = sub.add_parser("evaluate", help="score a run; writes RUN/metrics.json")
    sp.add_argument("run")
    sp.add_argument("--data", default=None, help="other data to score against")
    sp.add_argument("--samples", type=int, default=20)
    common(sp, data_opts=True)
    sp.set_defaults(func=_evaluate)

    sp = sub.add_parser("simulate", help="posterior predictive trajectories to .npz")
    sp.add_argument("run")
    sp.add_argument("--out", required=True)
    sp.add_argument("--samples", type=int, default=100)
    common(sp)
    sp.set_defaults(func=_simulate)

    sp = sub.add_parser("growth", help="growth-rate posterior at given points")
    sp.add_argument("run")
    sp.add_argument("--points", required=True, help="CSV of coordinates")
    sp.add_argument("--time", type=float, required=True)
    sp.add_argument("--out", required=True)
    sp.add_argument("--samples", type=int, default=200)
    common(sp)
    sp.set_defaults(func=_growth)

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
    sp.set_defaults(func=_demo)

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
    sp.set_defaults(func=_bench)
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if not getattr(args, "quiet", False) else logging.WARNING,
        format="%(message)s",
    )
    try:
        args.func(args)
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
    except USER_ERRORS as err:
        if args.debug:
            raise
        print(f"vgfm-bayes: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
