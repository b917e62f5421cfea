"""CellRank kernels from a fit's couplings of consecutive snapshots.

CellRank (2.0.7) imports scanpy, numba and pygpcca; it is an optional dependency
(``pip install vgfm-bayes[scverse]``) and imported only inside :func:`real_time_kernel`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

from ..ot import solve_srot_safe

log = logging.getLogger(__name__)

SCVERSE_HINT = "pip install vgfm-bayes[scverse]"


def import_cellrank():
    """cellrank, or an ImportError that says how to install it."""
    try:
        import cellrank
    except ImportError as err:  # not installed, or one of its own imports fails
        raise ImportError(
            f"VGFM.to_cellrank needs CellRank ({err}); install it with: {SCVERSE_HINT}"
        ) from err
    return cellrank


def srot_couplings(
    xs: Sequence[np.ndarray],
    times: Sequence[float],
    resolved: Mapping[str, Any],
    masses: Sequence[float] | None = None,
    device: torch.device | str = "cpu",
) -> list[np.ndarray]:
    """Row-normalised SROT plans between consecutive snapshots, at a fit's settings.

    Parameters
    ----------
    xs : per time, ndarray shape (n_k, D) -- the cells in the fit's internal units.
    times : shape (K,), for messages.
    resolved : the fit's resolved settings (eps, tau, normalize_cost).
    masses : relative masses per time (default: cell counts); target masses are
        b_j = (M_{k+1} / M_k) * n_k / n_{k+1}, as in training (ot/targets.py).

    Returns
    -------
    per interval k, ndarray shape (n_k, n_{k+1}), float64: pi_ij / sum_j pi_ij, the probability
    that cell i at t_k goes to cell j at t_{k+1}.
    """
    eps, tau = float(resolved["eps"]), float(resolved["tau"])
    normalize = bool(resolved.get("normalize_cost", True))
    out = []
    for k in range(len(xs) - 1):
        x0 = torch.tensor(np.asarray(xs[k]), dtype=torch.float64, device=device)
        x1 = torch.tensor(np.asarray(xs[k + 1]), dtype=torch.float64, device=device)
        n, m = x0.shape[0], x1.shape[0]
        # default masses = cell counts: M_{k+1} / M_k = m / n, so b_j = 1 (as in training)
        ratio = m / n if masses is None else float(masses[k + 1] / masses[k])
        b = torch.full((m,), ratio * n / m, dtype=torch.float64, device=device)
        label = f"CellRank coupling {k} (t={times[k]:g} -> {times[k + 1]:g})"
        res, _ = solve_srot_safe(x0, x1, eps, tau, label=label, normalize_cost=normalize, b=b)
        plan = res.plan / res.row_sums.clamp_min(torch.finfo(torch.float64).tiny)[:, None]
        out.append(plan.cpu().numpy())
        del res, plan
    return out


def real_time_kernel(
    adata,
    time_key: str,
    couplings: Mapping[tuple[Any, Any], np.ndarray],
    *,
    threshold: float | str | None = "auto",
    self_transitions: str | Sequence[Any] = "connectivities",
    conn_weight: float | None = None,
    conn_kwargs: Mapping[str, Any] | None = None,
):
    """A CellRank RealTimeKernel on ``adata`` with these couplings, transition matrix computed.

    couplings : {(t_k, t_{k+1}): ndarray (n_k, n_{k+1})}, keyed by categories of the ordered
        categorical obs[time_key]; rows follow adata.obs_names of the source time, columns those
        of the target time.
    threshold, self_transitions, conn_weight, conn_kwargs : as
        ``RealTimeKernel.compute_transition_matrix`` (CellRank's defaults).
    """
    cr = import_cellrank()
    import anndata as ad

    time = adata.obs[time_key]
    names = np.asarray(adata.obs_names)
    wrapped = {}
    for (src, tgt), plan in couplings.items():
        c = ad.AnnData(np.asarray(plan))
        c.obs_names = names[(time == src).to_numpy()]
        c.var_names = names[(time == tgt).to_numpy()]
        wrapped[src, tgt] = c
    kernel = cr.kernels.RealTimeKernel(adata, time_key=time_key, couplings=wrapped)
    kernel.compute_transition_matrix(
        threshold=threshold,
        self_transitions=self_transitions,
        conn_weight=conn_weight,
        conn_kwargs=dict(conn_kwargs or {}),
    )
    return kernel
