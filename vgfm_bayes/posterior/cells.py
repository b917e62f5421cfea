"""Per-cell posterior summaries in batches of cells, so memory does not grow with the draws.

Writing every cell's draws at once (S draws x n cells x D dims) does not fit for an atlas: 200
draws of 100,000 cells in 50 dims are 8 GB in float64. Here each batch of cells (all at one
time) gets its float32 draws, which are reduced to summaries at once; only the summaries, a few
numbers per cell, are kept.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from .intervals import summarise
from .predictive import direction_spread

# bytes of float32 draws (S x cells x width) one batch may hold; the fields' hidden layers are
# as wide as ``width``, and a few such tensors are alive at once (inside a forward pass, and
# the summaries' temporaries), so a batch's peak is some multiple of this
BATCH_BYTES = 16 * 2**20
MAX_BATCH = 4096


def batch_cells(n_draws: int, width: int, max_cells: int = MAX_BATCH) -> int:
    """Cells per batch: at most ``max_cells``, and few enough that n_draws x cells x width float32
    values stay within BATCH_BYTES (at least 16 cells)."""
    fit = BATCH_BYTES // max(1, 4 * n_draws * max(1, width))
    return int(max(16, min(max_cells, fit)))


def cell_summaries(
    rows: Callable[[np.ndarray], np.ndarray],
    times: np.ndarray,
    growth: Callable[[np.ndarray, float], np.ndarray],
    velocity: Callable[[np.ndarray, float], np.ndarray] | None = None,
    *,
    dim: int,
    is_ensemble: bool = False,
    groups: Sequence[int] | None = None,
    batch_size: int = MAX_BATCH,
) -> dict[str, np.ndarray]:
    """Growth (and velocity) posterior summaries of every cell at its own time.

    Parameters
    ----------
    rows : idx -> coordinates of those cells, ndarray shape (len(idx), dim).
    times : ndarray, shape (n,) -- each cell's time.
    growth : (x (b, dim), t) -> growth draws, shape (S, b).
    velocity : (x (b, dim), t) -> velocity draws, shape (S, b, dim); None: growth only.
    is_ensemble, groups : the draws are an ensemble's members, or come in groups of these sizes
        (a finite mixture's components); intervals: posterior/intervals.py.
    batch_size : cells per batch.

    Returns
    -------
    dict with "growth_<c>" for c in mean, sd, q05, q50, q95, p_positive, each (n,); with
    ``velocity`` also "velocity_mean", "velocity_sd" (n, dim) and "direction_spread" (n,);
    and "samples", the number of draws S.
    """
    n = len(times)
    out: dict[str, np.ndarray] = {}
    if velocity is not None:
        out["velocity_mean"] = np.zeros((n, dim))
        out["velocity_sd"] = np.zeros((n, dim))
        out["direction_spread"] = np.zeros(n)
    n_draws = 0
    for t in np.unique(times):
        cells = np.flatnonzero(times == t)
        for lo in range(0, len(cells), batch_size):
            idx = cells[lo : lo + batch_size]
            x = rows(idx)
            g = growth(x, float(t))
            n_draws = g.shape[0]
            for c, values in summarise(g, is_ensemble=is_ensemble, groups=groups).items():
                out.setdefault(f"growth_{c}", np.zeros(n))[idx] = values
            del g
            if velocity is None:
                continue
            v = velocity(x, float(t))
            out["velocity_mean"][idx] = v.mean(0, dtype=np.float64)
            if v.shape[0] > 1:
                out["velocity_sd"][idx] = v.std(0, ddof=1)  # float32 temporaries, not float64
            out["direction_spread"][idx] = direction_spread(v)
            del v
    out["samples"] = np.asarray(n_draws)
    return out
