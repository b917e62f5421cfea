"""A fitted VGFM's outputs for scverse tools: AnnData (scVelo's and moscot's keys) and CellRank.

``VGFM.to_anndata``, ``VGFM.posterior_growth_rates`` and ``VGFM.to_cellrank`` are thin wrappers
of the functions here. Each finds the cells' times (data/timelabels.py) and coordinates the way
the fit did: by default the obs time column, the representation and the label -> time mapping
that the fit recorded, else the same rules as for fitting (rep None: "X_pca").
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from .data import DataError, anndata_times, rep_rows, resolve_rep
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
        members=post.members,
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
