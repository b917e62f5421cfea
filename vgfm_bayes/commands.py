"""The command line's commands: each takes the parsed arguments (cli.py builds the parser and
imports this module only once a command is chosen, so `vgfm-bayes --help` stays fast)."""

from __future__ import annotations

import csv
import io
import json
import logging
from pathlib import Path

import numpy as np

from .data import DataError, read_masses, read_time_map
from .estimator import VGFM, RunError
from .infer import (
    CheckpointError,
    ConfigError,
    FitConfig,
    TrainingError,
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


def fit(args) -> None:
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


def tune(args) -> None:
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
    print(
        f"\nbest: eps={best['eps']:g} tau={best['tau']:g} (max-normalised cost; the largest tau"
        " within one standard error of the lowest score)"
    )
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


def evaluate(args) -> None:
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


def simulate(args) -> None:
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


def growth(args) -> None:
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


def demo(args) -> None:
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


def bench(args) -> None:
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
