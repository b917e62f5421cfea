"""Write posterior summaries back into AnnData with scverse conventions.

What is written (prefix ``P`` = "" by default, or ``key_added + "_"``):

- ``obsm[P + "velocity_" + basis]`` : (n_obs, D) posterior mean velocity, basis = rep without
  a leading "X_" (rep "X_pca" -> "velocity_pca", as scVelo's "velocity_umap"),
  ``obsm[P + "velocity_" + basis + "_sd"]`` its posterior sd per coordinate;
- ``uns[P + "velocity_params"]`` : {"embeddings": [..., basis]} (merged into what is there), so
  scVelo takes the velocity above as already projected: ``scv.pl.velocity_embedding_stream(
  adata, basis=basis, vkey=P + "velocity")`` draws it without recomputing anything;
- ``layers[P + "velocity"]`` : (n_obs, n_vars) float32, the mean velocity in gene space,
  velocity_pca @ PCs.T, when rep is "X_pca" and ``varm["PCs"]`` has its D loadings (genes
  outside the PCA, e.g. not highly variable, have zero loadings and so zero velocity);
- ``obs[P + "growth_mean" | "growth_sd" | "growth_q05" | "growth_q50" | "growth_q95" |
  "growth_p_positive"]`` : the growth-rate posterior at each cell's own time (moscot's
  growth-rate vocabulary), ``obs[P + "velocity_direction_spread"]`` : angular spread of the
  velocity draws (radians);
- ``uns[key_added or "vgfm_bayes"]`` : the fit's parameters and what was written where.

The caller's object is never changed unless ``inplace=True``; each key written is logged.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

GROWTH_COLUMNS = ("mean", "sd", "q05", "q50", "q95", "p_positive")


def velocity_key(rep: str, key_added: str | None = None) -> str:
    basis = rep[2:] if rep.startswith("X_") else rep
    prefix = f"{key_added}_" if key_added else ""
    return f"{prefix}velocity_{basis}"


def _uns_safe(value: Any) -> Any:
    """Values h5ad can store: None dropped from dicts, tuples as lists, scalars as they are."""
    if isinstance(value, Mapping):
        return {str(k): _uns_safe(v) for k, v in value.items() if v is not None}
    if isinstance(value, list | tuple):
        items = [_uns_safe(v) for v in value if v is not None]
        if all(isinstance(v, int | float | bool | np.number) for v in items):
            return np.asarray(items)
        return [str(v) for v in items]
    return value


def gene_velocity(velocity_pca: np.ndarray, loadings: np.ndarray, chunk: int = 4096):
    """Velocity in gene space, velocity_pca @ loadings.T, float32, shape (n, n_vars), computed
    in chunks of cells (no float64 n x n_vars temporary)."""
    loadings = np.asarray(loadings, dtype=np.float32)
    out = np.empty((velocity_pca.shape[0], loadings.shape[0]), dtype=np.float32)
    for lo in range(0, velocity_pca.shape[0], chunk):
        out[lo : lo + chunk] = np.asarray(velocity_pca[lo : lo + chunk], np.float32) @ loadings.T
    return out


def pca_loadings(adata, rep: str, dim: int) -> np.ndarray | None:
    """``varm["PCs"]`` (n_vars, dim) when rep is "X_pca" and the loadings match, else None."""
    if rep != "X_pca" or "PCs" not in adata.varm:
        return None
    pcs = np.asarray(adata.varm["PCs"])
    if pcs.ndim != 2 or pcs.shape[1] != dim:
        log.info(
            "varm['PCs'] has shape %s, not (n_vars, %d): no gene-space velocity layer",
            pcs.shape,
            dim,
        )
        return None
    return pcs


def write_posterior(
    adata,
    *,
    growth: Mapping[str, np.ndarray],
    velocity_mean: np.ndarray,
    velocity_sd: np.ndarray,
    direction_spread: np.ndarray | None = None,
    rep: str = "X",
    params: Mapping[str, Any] | None = None,
    key_added: str | None = None,
    inplace: bool = False,
):
    """Write growth and velocity summaries per cell into ``adata``.

    Parameters
    ----------
    growth : mapping with the GROWTH_COLUMNS, each ndarray (n_obs,).
    velocity_mean, velocity_sd : ndarray, shape (n_obs, D).
    direction_spread : ndarray, shape (n_obs,), optional.
    rep : the representation the model was fitted on ("X" or an obsm key).
    params : stored in uns (None values dropped).
    key_added : prefix of the keys and name of the uns entry (default: no prefix, "vgfm_bayes").
    inplace : write into ``adata`` and return None; default: write into a copy and return it.
    """
    n = adata.n_obs
    velocity_mean = np.asarray(velocity_mean)
    if velocity_mean.shape[0] != n or np.shape(velocity_sd) != velocity_mean.shape:
        raise ValueError(
            f"velocity arrays must have shape (n_obs={n}, D), got {velocity_mean.shape} "
            f"and {np.shape(velocity_sd)}"
        )
    missing = [c for c in GROWTH_COLUMNS if c not in growth]
    if missing:
        raise ValueError(f"growth summaries lack {', '.join(missing)}")
    out = adata if inplace else adata.copy()
    prefix = f"{key_added}_" if key_added else ""
    written = []
    vkey = velocity_key(rep, key_added)
    out.obsm[vkey] = velocity_mean
    out.obsm[f"{vkey}_sd"] = np.asarray(velocity_sd)
    written += [f"obsm['{vkey}']", f"obsm['{vkey}_sd']"]
    if rep != "X":  # scVelo: the embedding's velocity is there, nothing to project
        basis = rep[2:] if rep.startswith("X_") else rep
        pkey = f"{prefix}velocity_params"
        old = out.uns.get(pkey)
        velocity_params = dict(old) if isinstance(old, Mapping) else {}
        bases = [str(b) for b in np.ravel(velocity_params.get("embeddings", []))]
        velocity_params["embeddings"] = [*(b for b in bases if b != basis), basis]
        out.uns[pkey] = velocity_params
        written.append(f"uns['{pkey}']")
    loadings = pca_loadings(out, rep, velocity_mean.shape[1])
    if loadings is not None:
        out.layers[f"{prefix}velocity"] = gene_velocity(velocity_mean, loadings)
        written.append(f"layers['{prefix}velocity']")
    for c in GROWTH_COLUMNS:
        col = np.asarray(growth[c], dtype=np.float64).reshape(-1)
        if col.shape != (n,):
            raise ValueError(f"growth {c} has {col.size} values for {n} cells")
        out.obs[f"{prefix}growth_{c}"] = col
        written.append(f"obs['{prefix}growth_{c}']")
    if direction_spread is not None:
        out.obs[f"{prefix}velocity_direction_spread"] = np.asarray(direction_spread)
        written.append(f"obs['{prefix}velocity_direction_spread']")
    uns_key = key_added or "vgfm_bayes"
    out.uns[uns_key] = _uns_safe({**(params or {}), "rep": rep, "written": written})
    written.append(f"uns['{uns_key}']")
    for key in written:
        log.info("wrote %s", key)
    return None if inplace else out
