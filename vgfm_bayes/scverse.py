"""A fitted VGFM's outputs for scverse tools: AnnData (scVelo's and moscot's keys) and CellRank.

``VGFM.to_anndata``, ``VGFM.posterior_growth_rates`` and ``VGFM.to_cellrank`` come from the
:class:`ScverseOutputs` mixin at the end, thin wrappers of the functions here. Each finds the
cells' times (data/timelabels.py) and coordinates the way the fit did: by default the obs time
column, the representation and the label -> time mapping that the fit recorded, else the same
rules as for fitting (rep None: "X_pca").
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from .data import DataError, anndata_times, read_time_map, rep_rows, resolve_rep
from .posterior import (
    GROWTH_COLUMNS,
    batch_cells,
    cell_summaries,
    real_time_kernel,
    srot_couplings,
    write_posterior,
)
from .posterior.cellrank import import_cellrank

if TYPE_CHECKING:
    import pandas as pd

    from .estimator import VGFM

log = logging.getLogger(__name__)

# the ordered categorical time column a CellRank kernel reads (CellRank needs a categorical
# and sorts its categories to find the last time point, so these are the numeric times)
CELLRANK_TIME = "vgfm_time"


def _fit_time_map(source: Mapping[str, Any], adata, time_key: str):
    """(time_map, its name): the fit's label -> time mapping when it covers this column's
    labels (so a subset of the fitted cells keeps the fit's times: codes of an ordered
    categorical would shift), else the time_map the fit was given, else None."""
    if source.get("time_key") != time_key:
        return None, ""
    labels = source.get("labels") or {}
    import pandas as pd  # on first use: 0.6 s of every command's start-up otherwise

    col = adata.obs[time_key].dropna()
    if isinstance(col.dtype, pd.CategoricalDtype):
        col = col.cat.remove_unused_categories()
        present = col.cat.categories
    else:
        present = pd.unique(col)
    if labels and {str(v) for v in present} <= set(labels):
        return labels, "the fit's mapping"
    return source.get("time_map"), "the time_map of the fit"


def cell_inputs(model: VGFM, adata, time_key: str | None, rep: str | None, time_map=None):
    """(time_key, rep, times (n_obs,), labels) for ``adata``, checked against the fit."""
    source = model.source or {}
    time_key = time_key or source.get("time_key")
    if time_key is None:
        raise DataError("pass time_key: the obs column with each cell's time")
    if rep is None:
        rep = source.get("rep")
    rep = resolve_rep(adata, rep)
    name = "the time_map"
    if time_map is None and time_key in adata.obs:
        time_map, name = _fit_time_map(source, adata, time_key)
    times, labels = anndata_times(adata, time_key, time_map, name)
    dim = adata.n_vars if rep == "X" else np.shape(adata.obsm[rep])[1]
    if dim != model.fields.dim:
        fitted = f" (fitted on rep {source['rep']!r})" if source.get("rep") else ""
        raise DataError(
            f"rep {rep!r} has {dim} dims but the model was fitted on {model.fields.dim}{fitted}; "
            "pass the representation the model was fitted on"
        )
    return time_key, rep, times, labels


def _summaries(model: VGFM, adata, rep, times, samples, *, velocity: bool, batch_size):
    post = model.posterior
    params = post.draw(samples)
    n_draws = next(iter(params.values())).shape[0]
    f = model.fields
    width = max(f.dim, *f.velocity.hidden, *f.growth.hidden)
    return cell_summaries(
        lambda idx: rep_rows(adata, rep, idx),
        times,
        lambda x, t: model.growth_draws(x, t, params=params, dtype=np.float32),
        (lambda x, t: model.velocity_draws(x, t, params=params)) if velocity else None,
        dim=f.dim,
        groups=post.draw_groups(n_draws),
        batch_size=batch_size or batch_cells(n_draws, width),
    )


def to_anndata(
    model: VGFM,
    adata,
    time_key: str | None = None,
    rep: str | None = None,
    samples: int = 200,
    key_added: str | None = None,
    inplace: bool = False,
    *,
    time_map: Mapping[str, float] | None = None,
    batch_size: int | None = None,
):
    """See :meth:`VGFM.to_anndata`."""
    model._require_fitted()
    time_key, rep, times, labels = cell_inputs(model, adata, time_key, rep, time_map)
    out = _summaries(model, adata, rep, times, samples, velocity=True, batch_size=batch_size)
    info = {
        "head": model.config.head,
        "data": model.data.name,
        "time_key": time_key,
        # label -> time as two lists: labels may hold characters h5ad keys cannot ("/")
        "time_labels": list(labels) or None,
        "time_values": list(labels.values()) or None,
        "samples": int(out["samples"]),
        "config": model.config.to_dict(),
        "resolved": model.resolved,
    }
    return write_posterior(
        adata,
        growth={c: out[f"growth_{c}"] for c in GROWTH_COLUMNS},
        velocity_mean=out["velocity_mean"],
        velocity_sd=out["velocity_sd"],
        direction_spread=out["direction_spread"],
        rep=rep,
        params=info,
        key_added=key_added,
        inplace=inplace,
    )


def growth_rates(
    model: VGFM,
    adata,
    time_key: str | None = None,
    rep: str | None = None,
    samples: int = 200,
    *,
    time_map: Mapping[str, float] | None = None,
    batch_size: int | None = None,
) -> pd.DataFrame:
    """See :meth:`VGFM.posterior_growth_rates`."""
    model._require_fitted()
    _, rep, times, _ = cell_inputs(model, adata, time_key, rep, time_map)
    out = _summaries(model, adata, rep, times, samples, velocity=False, batch_size=batch_size)
    import pandas as pd  # on first use: 0.6 s of every command's start-up otherwise

    return pd.DataFrame(
        {f"growth_{c}": out[f"growth_{c}"] for c in GROWTH_COLUMNS}, index=adata.obs_names.copy()
    )


def to_cellrank(
    model: VGFM,
    adata,
    time_key: str | None = None,
    rep: str | None = None,
    *,
    time_map: Mapping[str, float] | None = None,
    inplace: bool = False,
    threshold: float | str | None = "auto",
    self_transitions: str | Sequence[Any] = "connectivities",
    conn_weight: float | None = None,
    conn_kwargs: Mapping[str, Any] | None = None,
):
    """See :meth:`VGFM.to_cellrank`."""
    model._require_fitted()
    import_cellrank()  # fail before any work when CellRank is missing
    time_key, rep, times, _ = cell_inputs(model, adata, time_key, rep, time_map)
    uniq = np.unique(times)
    if len(uniq) < 2:
        raise DataError(f"obs[{time_key!r}] holds one time point; CellRank needs two or more")
    import pandas as pd  # on first use: 0.6 s of every command's start-up otherwise

    target = adata if inplace else adata.copy()
    target.obs[CELLRANK_TIME] = pd.Categorical(times, categories=uniq, ordered=True)
    xs = []
    for t in uniq:
        x = rep_rows(adata, rep, np.flatnonzero(times == t))
        if model.scaling is not None and not model.scaling.is_identity:
            x = model.scaling.to_internal(x)
        xs.append(x)
    fitted = model.data.times
    same = len(fitted) == len(uniq) and np.allclose(fitted, uniq)
    plans = srot_couplings(
        xs, uniq, model.resolved, model.data.masses if same else None, device=model.device
    )
    couplings = {(uniq[k], uniq[k + 1]): plan for k, plan in enumerate(plans)}
    kernel = real_time_kernel(
        target,
        CELLRANK_TIME,
        couplings,
        threshold=threshold,
        self_transitions=self_transitions,
        conn_weight=conn_weight,
        conn_kwargs={"use_rep": rep, **(conn_kwargs or {})},
    )
    log.info(
        "CellRank RealTimeKernel from the SROT plans of %d intervals (eps=%g, tau=%g); time "
        "column obs[%r]%s",
        len(plans),
        model.resolved["eps"],
        model.resolved["tau"],
        CELLRANK_TIME,
        "" if inplace else " of a copy (kernel.adata)",
    )
    return kernel


class ScverseOutputs:
    """``VGFM``'s AnnData and CellRank outputs (a mixin; see the module docstring)."""

    def to_anndata(
        self,
        adata,
        time_key: str | None = None,
        rep: str | None = None,
        samples: int = 200,
        key_added: str | None = None,
        inplace: bool = False,
        *,
        time_map: dict[str, float] | None = None,
        batch_size: int | None = None,
    ):
        """Write growth and velocity posteriors of every cell, at its own time, into AnnData.

        obsm["velocity_<basis>"] (+ "_sd") and uns["velocity_params"] (scVelo draws the
        stream plot from them as they are), layers["velocity"] in gene space for rep "X_pca"
        with varm["PCs"], obs growth_mean / sd / q05 / q50 / q95 / p_positive (moscot's growth
        vocabulary) and velocity_direction_spread, uns["vgfm_bayes"]; all keys prefixed by
        ``key_added + "_"`` when given (see posterior/anndata_io.py). Rows follow
        adata.obs_names. Works on a copy (returned) unless inplace=True.

        time_key, rep, time_map : default to what the fit recorded for AnnData input, else
            rep "X_pca" (see :meth:`fit`).
        batch_size : cells whose draws are held at once (default: a memory budget, at most
            4096); the draws are float32 and reduced to summaries per batch, so memory does not
            grow with samples x n_obs.
        """
        return to_anndata(
            self,
            adata,
            time_key,
            rep,
            samples,
            key_added,
            inplace,
            time_map=read_time_map(time_map),
            batch_size=batch_size,
        )

    def posterior_growth_rates(
        self,
        adata,
        time_key: str | None = None,
        rep: str | None = None,
        samples: int = 200,
        *,
        time_map: dict[str, float] | None = None,
        batch_size: int | None = None,
    ) -> pd.DataFrame:
        """Growth-rate posterior of every cell at its own time, per unit time, as a DataFrame
        indexed by adata.obs_names with columns growth_mean, growth_sd, growth_q05, growth_q50,
        growth_q95, growth_p_positive (the obs columns of :meth:`to_anndata`)."""
        return growth_rates(
            self,
            adata,
            time_key,
            rep,
            samples,
            time_map=read_time_map(time_map),
            batch_size=batch_size,
        )

    def to_cellrank(
        self,
        adata,
        time_key: str | None = None,
        rep: str | None = None,
        *,
        time_map: dict[str, float] | None = None,
        inplace: bool = False,
        **kernel_options: Any,
    ):
        """A CellRank ``RealTimeKernel`` whose transition matrix comes from this fit.

        Its couplings between consecutive snapshots are the SROT plans that the fit trains on,
        recomputed on ``adata``'s cells at the fit's resolved settings (eps, tau, cost
        normalisation, internal units, the fitted masses when the times agree) and
        row-normalised: pi_ij / sum_j pi_ij is where cell i at t_k goes among the cells at
        t_{k+1}. Why the plans and not simulated trajectories: the plan couples observed cells
        to observed cells, which is what a RealTimeKernel holds (as moscot's and WOT's
        couplings); the fields' regression targets are drawn from it; it is deterministic, and
        simulated end points would first have to be snapped onto observed cells (a kNN choice
        of its own). It carries the fit's couplings, not the posterior spread of the fields.
        Memory: one dense n_k x n_{k+1} float64 plan per interval.

        The kernel works on a copy of ``adata`` (``kernel.adata``; CellRank estimators write
        there) unless inplace=True, with the numeric times as the ordered categorical
        obs["vgfm_time"] (CellRank needs a categorical it can sort). ``kernel_options`` go to
        ``RealTimeKernel.compute_transition_matrix``: threshold ("auto"), self_transitions
        ("connectivities": a kNN graph on ``rep`` for the last time point), conn_weight,
        conn_kwargs. Needs ``pip install vgfm-bayes[scverse]``.
        """
        return to_cellrank(
            self,
            adata,
            time_key,
            rep,
            time_map=read_time_map(time_map),
            inplace=inplace,
            **kernel_options,
        )
