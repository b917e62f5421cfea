"""Scale benchmark: time and peak memory of every phase against cells per time point (issue 4).

Synthetic data: the Gaussian-mixture growth benchmark (vgfm_bayes.data.gaussian_mixture) with
``--times`` time points and exactly n cells at every time point (growth carried by the masses),
in ``--dim`` dimensions. For each n the point head is trained end to end through the public
``VGFM`` estimator, and each phase is measured:

    data      generating the cells
    srot      SROT plans / targets of every interval (full plan or mini-batch, see "srot_mode")
    warmup    regression-only SVI steps (time per step reported too)
    joint     joint SVI steps with the simulated W1 + mass factor (time per step too)
    evaluate  simulating all first-snapshot cells and scoring W1 / RME per time (exact W1 where
              it fits, a mini-batch estimate beyond: "w1_method")

Peak memory per phase: on CPU the peak resident set size during the phase (a thread polls
/proc/self/statm every 5 ms; "rss_mb" is that peak, "rss_delta_mb" its rise over the RSS at the
phase start), on CUDA torch.cuda.max_memory_allocated over the phase. Every size runs in its own
subprocess so one size's allocations do not inflate the next one's peaks.

The phases are timed by wrapping the two functions ``VGFM.fit`` calls for them
(``vgfm_bayes.ot.members.interval_plans`` and ``vgfm_bayes.infer.svi.run_phase``); the run fails
if a wrapper was not called, so a refactor of fit cannot silently break the numbers.

Output: a Markdown table on stdout (and --md FILE), the raw records as JSON (--out FILE), and the
empirical growth rate of each phase's time and memory: the slope of a least-squares line through
(log n, log value), i.e. value ~ n^slope.

Examples
--------
    python benchmarks/scale.py --quick --sizes 1000 10000 --out scale_cpu.json
    python benchmarks/scale.py --device cuda --sizes 1000 10000 100000 --out scale_gpu.json
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import resource
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path

PHASES = ("data", "srot", "warmup", "joint", "evaluate")


# --------------------------------------------------------------------------- measurement
class PeakMemory:
    """Peak memory over a phase: RSS polled by a thread (CPU) or CUDA's allocator peak."""

    def __init__(self, device: str) -> None:
        self.cuda = device.startswith("cuda")
        self.page = os.sysconf("SC_PAGE_SIZE")
        self._peak = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def rss(self) -> int:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * self.page

    def _poll(self) -> None:
        while not self._stop.wait(0.005):
            self._peak = max(self._peak, self.rss())

    @contextmanager
    def phase(self, record: dict, name: str):
        import torch

        if self.cuda:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            start_alloc = torch.cuda.memory_allocated()
        start = self.rss()
        self._peak = start
        self._stop.clear()
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._thread.start()
        t0 = time.perf_counter()
        try:
            yield
        finally:
            if self.cuda:
                torch.cuda.synchronize()
            seconds = time.perf_counter() - t0
            self._stop.set()
            self._thread.join()
            peak = max(self._peak, self.rss())
            entry = {
                "seconds": seconds,
                "rss_mb": peak / 2**20,
                "rss_delta_mb": (peak - start) / 2**20,
            }
            if self.cuda:
                entry["cuda_peak_mb"] = torch.cuda.max_memory_allocated() / 2**20
                entry["cuda_delta_mb"] = (torch.cuda.max_memory_allocated() - start_alloc) / 2**20
            record[name] = entry


# --------------------------------------------------------------------------- one size
def run_one(args: argparse.Namespace, n: int) -> dict:
    """Fit and evaluate at n cells per time point in this process; returns the record."""
    import torch

    import vgfm_bayes.infer.svi as svi
    import vgfm_bayes.ot.members as est  # the fit solves its SROT plans there
    from vgfm_bayes import VGFM
    from vgfm_bayes.data import gaussian_mixture
    from vgfm_bayes.ot import MiniBatchPlan

    torch.set_num_threads(args.threads)
    mem = PeakMemory(args.device)
    phases: dict = {}
    info: dict = {"n": n, "srot_mode": None}

    with mem.phase(phases, "data"):
        data = gaussian_mixture(
            dim=args.dim, times=list(range(args.times)), cells_per_time=n, seed=args.seed
        )

    plain_plans, plain_phase = est.interval_plans, svi.run_phase

    def timed_plans(*a, **kw):
        with mem.phase(phases, "srot"):
            plans = plain_plans(*a, **kw)
        mini = [p for p in plans if isinstance(p, MiniBatchPlan)]
        info["srot_mode"] = "minibatch" if mini else "full"
        if mini:
            info["srot_batch"] = mini[0].batch
            info["srot_repeats"] = mini[0].repeats
        return plans

    def timed_phase(name, *a, **kw):
        key = {"warm-up": "warmup", "joint": "joint"}[name]
        with mem.phase(phases, key):
            return plain_phase(name, *a, **kw)

    est.interval_plans, svi.run_phase = timed_plans, timed_phase
    try:
        model = VGFM(
            head="point",
            device=args.device,
            seed=args.seed,
            eps=args.eps,
            tau=args.tau,
            normalize_cost=True,
            warmup_steps=args.warmup_steps,
            joint_steps=args.joint_steps,
            srot_batch=args.srot_batch,
            srot_repeats=args.srot_repeats,
            fit_w1=args.fit_w1,
            velocity_hidden=args.hidden,
            growth_hidden=args.hidden,
        )
        model.fit(data, progress=False)
    finally:
        est.interval_plans, svi.run_phase = plain_plans, plain_phase
    missing = [p for p in ("srot", "warmup", "joint") if p not in phases and _expected(args, p)]
    if missing:
        raise RuntimeError(
            f"phases {missing} were not measured: VGFM.fit no longer calls "
            "vgfm_bayes.ot.members.interval_plans / vgfm_bayes.infer.svi.run_phase; update the "
            "wrappers in benchmarks/scale.py"
        )
    with mem.phase(phases, "evaluate"):
        metrics = model.evaluate(samples=1)
    for key, steps in (("warmup", args.warmup_steps), ("joint", args.joint_steps)):
        if key in phases and steps:
            phases[key]["seconds_per_step"] = phases[key]["seconds"] / steps
    info.update(
        phases=phases,
        cells=data.counts.tolist(),
        w1_mean=metrics["w1_mean"],
        rme_mean=metrics["rme_mean"],
        w1_method=metrics["w1_method"],
        peak_rss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        seconds_total=sum(p["seconds"] for p in phases.values()),
    )
    if args.device.startswith("cuda"):
        info["gpu"] = torch.cuda.get_device_name()
    return info


def _expected(args: argparse.Namespace, phase: str) -> bool:
    return {"srot": True, "warmup": args.warmup_steps > 0, "joint": args.joint_steps > 0}[phase]


# --------------------------------------------------------------------------- reporting
def loglog_slope(ns: list[float], values: list[float]) -> float | None:
    """Least-squares slope of log(value) on log(n); None with fewer than two usable points."""
    pts = [(math.log(n), math.log(v)) for n, v in zip(ns, values, strict=True) if v and v > 0]
    if len(pts) < 2:
        return None
    mx = sum(p[0] for p in pts) / len(pts)
    my = sum(p[1] for p in pts) / len(pts)
    sxx = sum((p[0] - mx) ** 2 for p in pts)
    return sum((p[0] - mx) * (p[1] - my) for p in pts) / sxx if sxx > 0 else None


def growth_rates(records: list[dict], cuda: bool) -> dict:
    ok = [r for r in records if "phases" in r]
    ns = [r["n"] for r in ok]
    out = {}
    mem_key = "cuda_delta_mb" if cuda else "rss_delta_mb"
    for phase in PHASES:
        have = [r for r in ok if phase in r["phases"]]
        if len(have) < 2:
            continue
        xs = [r["n"] for r in have]
        time_key = "seconds_per_step" if phase in ("warmup", "joint") else "seconds"
        out[phase] = {
            "time_slope": loglog_slope(xs, [r["phases"][phase].get(time_key, 0) for r in have]),
            "memory_slope": loglog_slope(
                xs, [max(r["phases"][phase][mem_key], 1e-3) for r in have]
            ),
        }
    out["_sizes"] = ns
    return out


def markdown(records: list[dict], rates: dict, args: argparse.Namespace) -> str:
    cuda = args.device.startswith("cuda")
    mem_label = "CUDA peak MB" if cuda else "peak RSS MB (rise)"
    lines = [
        f"Scale benchmark: Gaussian mixture, {args.dim}-D, {args.times} time points, point head, "
        f"device {args.device}, warm-up {args.warmup_steps} / joint {args.joint_steps} steps, "
        f"fit_w1 {args.fit_w1}, eps {args.eps}, tau {args.tau} (normalised cost).",
        "",
        "| cells / time | SROT mode | phase | seconds | s / step | " + mem_label + " |",
        "|---:|---|---|---:|---:|---:|",
    ]
    for r in records:
        if "phases" not in r:
            lines.append(f"| {r['n']:,} | - | failed | {r.get('error', '')} | | |")
            continue
        mode = r["srot_mode"]
        if mode == "minibatch":
            mode += f" (batch {r['srot_batch']}, x{r['srot_repeats']})"
        for phase in PHASES:
            p = r["phases"].get(phase)
            if p is None:
                continue
            step = f"{p['seconds_per_step']:.4f}" if "seconds_per_step" in p else ""
            if cuda:
                m = f"{p['cuda_peak_mb']:.0f}"
            else:
                m = f"{p['rss_mb']:.0f} (+{p['rss_delta_mb']:.0f})"
            lines.append(f"| {r['n']:,} | {mode} | {phase} | {p['seconds']:.2f} | {step} | {m} |")
        methods = sorted(set(r["w1_method"]))
        lines.append(
            f"| {r['n']:,} | {mode} | **total** | {r['seconds_total']:.2f} | | "
            f"W1 {r['w1_mean']:.3f} ({'/'.join(methods)}), RME {r['rme_mean']:.3f} |"
        )
    lines += ["", "Empirical growth with n (value ~ n^slope, least squares on log-log):", ""]
    for phase, rate in rates.items():
        if phase.startswith("_"):
            continue
        t = "n/a" if rate["time_slope"] is None else f"{rate['time_slope']:.2f}"
        m = "n/a" if rate["memory_slope"] is None else f"{rate['memory_slope']:.2f}"
        what = "time per step" if phase in ("warmup", "joint") else "time"
        lines.append(f"- {phase}: {what} ~ n^{t}, memory rise ~ n^{m}")
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- driver
def parse(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000, 100000])
    ap.add_argument("--dim", type=int, default=2)
    ap.add_argument("--times", type=int, default=4)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--quick", action="store_true", help="20 warm-up and 5 joint steps")
    ap.add_argument("--warmup-steps", type=int, default=None)
    ap.add_argument("--joint-steps", type=int, default=None)
    ap.add_argument("--hidden", type=int, nargs="+", default=[64, 64, 64])
    ap.add_argument("--eps", type=float, default=0.01)
    ap.add_argument("--tau", type=float, default=0.1)
    ap.add_argument(
        "--srot-batch",
        type=int,
        default=None,
        help="source cells per SROT block (default: auto, full plan while it fits)",
    )
    ap.add_argument("--srot-repeats", type=int, default=1)
    ap.add_argument("--fit-w1", choices=["emd", "sinkhorn"], default="emd")
    ap.add_argument("--threads", type=int, default=max(1, min(os.cpu_count() or 1, 16)))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--size-timeout", type=float, default=3600, help="seconds allowed per size")
    ap.add_argument("--out", type=Path, default=None, help="write the records as JSON here")
    ap.add_argument("--md", type=Path, default=None, help="write the Markdown table here")
    ap.add_argument("--one", type=int, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.warmup_steps is None:
        args.warmup_steps = 20 if args.quick else 500
    if args.joint_steps is None:
        args.joint_steps = 5 if args.quick else 20
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    if args.one is not None:  # child: one size, JSON on the last stdout line
        print(json.dumps(run_one(args, args.one)))
        return 0
    child_argv = list(argv if argv is not None else sys.argv[1:])
    records: list[dict] = []
    for n in args.sizes:
        print(f"[scale] n = {n:,} cells per time point ...", file=sys.stderr, flush=True)
        cmd = [sys.executable, __file__, *child_argv, "--one", str(n)]
        try:
            proc = subprocess.run(
                cmd, capture_output=True, text=True, timeout=args.size_timeout, check=False
            )
        except subprocess.TimeoutExpired:
            records.append({"n": n, "error": f"timeout after {args.size_timeout:.0f} s"})
            print(f"[scale] n = {n:,}: timed out", file=sys.stderr, flush=True)
            write_outputs(args, records)
            continue
        except KeyboardInterrupt:  # e.g. `timeout --signal=INT`: keep what finished
            records.append({"n": n, "error": "interrupted (time limit)"})
            print(f"[scale] n = {n:,}: interrupted", file=sys.stderr, flush=True)
            break
        if proc.returncode != 0:
            tail = proc.stderr.strip().splitlines()[-1:] or ["?"]
            records.append({"n": n, "error": f"exit {proc.returncode}: {tail[0]}"})
            print(proc.stderr[-3000:], file=sys.stderr, flush=True)
        else:
            rec = json.loads(proc.stdout.strip().splitlines()[-1])
            records.append(rec)
            print(
                f"[scale] n = {n:,}: {rec['seconds_total']:.1f} s, SROT {rec['srot_mode']}",
                file=sys.stderr,
                flush=True,
            )
        write_outputs(args, records)  # after every size, so a later kill loses nothing
    table = write_outputs(args, records, final=True)
    print(table)
    return 0 if all("phases" in r for r in records) else 1


def write_outputs(args: argparse.Namespace, records: list[dict], final: bool = False) -> str:
    """Write the JSON records and the Markdown table (if asked); return the table."""
    rates = growth_rates(records, args.device.startswith("cuda"))
    table = markdown(records, rates, args)
    result = {
        "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count()},
        "records": records,
        "growth": rates,
        "complete": final and all("phases" in r for r in records),
    }
    for path, text in ((args.out, json.dumps(result, indent=2)), (args.md, table)):
        if path:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
            if final:
                print(f"[scale] wrote {path}", file=sys.stderr)
    return table


if __name__ == "__main__":
    sys.exit(main())
