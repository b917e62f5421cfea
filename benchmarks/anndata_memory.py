"""Peak memory of ``VGFM.to_anndata`` against the number of cells (issue 11).

A tiny model (the mean-field head, so every draw differs; a few training steps on 5 x 200 cells:
accuracy is irrelevant here; the default widths for the dimension, 256 x 5 above 10-D, unless
--hidden) is fitted once and saved. Then, for each cell count n, a fresh
subprocess loads it, builds an AnnData with n cells in ``--dims`` dimensions (obsm["X_pca"]) and
calls ``to_anndata(adata, samples=--draws)``. Measured in that subprocess:

    peak_mb     the rise of the resident set size during the call over the RSS just before it
                (a thread polls /proc/self/statm every 2 ms)
    maxrss_mb   the rise of ru_maxrss (the process's peak RSS) over the call: a lower bound, it
                only counts what goes past the process's earlier peak (loading torch, the model)
    outputs_mb  what the call must return anyway: the copy of the AnnData (to_anndata works on a
                copy) and the summaries written into it
    working_mb  peak_mb - outputs_mb: memory for the draws, which should not grow with n
    weights_mb  of which the network weight draws alone (draws x parameters, float32): the
                posterior is drawn once for all cells, so this does not grow with n either

For comparison, "all_at_once_mb" is the size of the float64 draws the previous to_anndata
allocated at once (draws x cells x dims for velocity, draws x cells for growth).

    python benchmarks/anndata_memory.py [--cells 10000 100000] [--dims 50] [--draws 200]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

PAGE = os.sysconf("SC_PAGE_SIZE")


def _rss_mb() -> float:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * PAGE / 2**20


def _maxrss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _cells(n: int, dims: int, times: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Drifting Gaussian clouds: n cells over ``times`` time points in ``dims`` dimensions."""
    rng = np.random.default_rng(seed)
    day = np.sort(rng.integers(0, times, n))
    x = rng.normal(size=(n, dims)) + day[:, None] * 0.5 / np.sqrt(dims)
    return x, day.astype(float)


def fit(run: Path, dims: int, hidden: list[int] | None) -> None:
    from vgfm_bayes import VGFM, TimeCourse

    x, day = _cells(1000, dims, 5, seed=0)
    tc = TimeCourse.from_arrays(x, day, name="memory")
    widths = {"velocity_hidden": hidden, "growth_hidden": hidden} if hidden else {}
    model = VGFM(head="mean_field", warmup_steps=20, joint_steps=2, seed=0, **widths)
    model.fit(tc, progress=False)
    model.save(run)


def measure(run: Path, n: int, dims: int, draws: int) -> dict:
    import anndata as ad
    import pandas as pd
    import torch

    from vgfm_bayes import VGFM

    torch.set_num_threads(1)
    model = VGFM.load(run)
    x, day = _cells(n, dims, 5, seed=1)
    adata = ad.AnnData(
        np.zeros((n, 1), dtype=np.float32),
        obs=pd.DataFrame({"day": day}, index=[f"c{i}" for i in range(n)]),
    )
    adata.obsm["X_pca"] = x
    del x
    import vgfm_bayes.scverse  # noqa: F401  (imported by the call; not part of its memory)

    one = model.posterior.draw(1)
    weights_mb = draws * sum(v.numel() * v.element_size() for v in one.values()) / 2**20
    del one
    peak = [_rss_mb()]
    done = threading.Event()

    def poll() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], _rss_mb())
            time.sleep(0.002)

    start, max_start = _rss_mb(), _maxrss_mb()
    thread = threading.Thread(target=poll, daemon=True)
    thread.start()
    t = time.perf_counter()
    out = model.to_anndata(adata, time_key="day", samples=draws)
    seconds = time.perf_counter() - t
    done.set()
    thread.join()
    peak_mb = max(peak[0], _rss_mb()) - start
    written = sum(np.asarray(v).nbytes for v in out.obsm.values()) - adata.obsm["X_pca"].nbytes
    written += out.obs.memory_usage(deep=False).sum() - adata.obs.memory_usage(deep=False).sum()
    copy = adata.obsm["X_pca"].nbytes + adata.X.nbytes + adata.obs.memory_usage(deep=True).sum()
    outputs_mb = (written + copy) / 2**20
    return {
        "cells": n,
        "dims": dims,
        "draws": draws,
        "seconds": round(seconds, 2),
        "peak_mb": round(peak_mb, 1),
        "maxrss_mb": round(_maxrss_mb() - max_start, 1),
        "outputs_mb": round(outputs_mb, 1),
        "working_mb": round(peak_mb - outputs_mb, 1),
        "weights_mb": round(weights_mb, 1),
        "all_at_once_mb": round(draws * n * (dims + 1) * 8 / 2**20, 1),
    }


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--cells", nargs="+", type=int, default=[10_000, 100_000])
    p.add_argument("--dims", type=int, default=50)
    p.add_argument("--draws", type=int, default=200)
    p.add_argument("--hidden", nargs="+", type=int, default=None, help="hidden widths")
    p.add_argument("--out", default=None, help="also write the records as JSON here")
    p.add_argument("--child", nargs=2, default=None, help=argparse.SUPPRESS)  # RUN N
    args = p.parse_args(argv)
    if args.child:
        record = measure(Path(args.child[0]), int(args.child[1]), args.dims, args.draws)
        print(json.dumps(record))
        return
    records = []
    with tempfile.TemporaryDirectory() as tmp:
        run = Path(tmp) / "run"
        fit(run, args.dims, args.hidden)
        for n in args.cells:
            cmd = [sys.executable, __file__, "--child", str(run), str(n)]
            cmd += ["--dims", str(args.dims), "--draws", str(args.draws)]
            r = subprocess.run(cmd, capture_output=True, text=True, check=True)
            records.append(json.loads(r.stdout.strip().splitlines()[-1]))
    cols = list(records[0])
    print("| " + " | ".join(cols) + " |")
    print("|" + "---|" * len(cols))
    for rec in records:
        cells = (f"{rec[c]:,}" if c != "seconds" else str(rec[c]) for c in cols)
        print("| " + " | ".join(cells) + " |")
    if args.out:
        Path(args.out).write_text(json.dumps(records, indent=2))


if __name__ == "__main__":
    main()
