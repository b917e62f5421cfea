"""Export posterior draws to ArviZ InferenceData (arviz 0.x) or DataTree (arviz 1.x).

``arviz.from_pyro`` accepts MCMC objects only, so the draws are handed over as arrays through
``from_dict``; :func:`to_inference_data` is the one place that knows which arviz is installed.
Every variable gets named dims: chain, draw, then cell / time / particle / dim.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .predictive import Trajectories


def _arviz_major() -> int:
    import arviz

    return int(str(arviz.__version__).split(".")[0])


def to_inference_data(
    growth: np.ndarray | None = None,
    velocity: np.ndarray | None = None,
    trajectories: Trajectories | None = None,
    *,
    cell_names: Sequence[str] | None = None,
    dim_names: Sequence[str] | None = None,
    attrs: dict | None = None,
    include_positions: bool = True,
):
    """Build InferenceData from posterior draws (one chain; draws on the draw dim).

    Parameters
    ----------
    growth : ndarray, shape (S, N), optional -- growth-rate draws per cell -> posterior "growth"
        (chain, draw, cell).
    velocity : ndarray, shape (S, N, D), optional -- velocity draws -> posterior "velocity"
        (chain, draw, cell, dim).
    trajectories : Trajectories, optional -- posterior predictive "mass" (chain, draw, time),
        "log_w" (chain, draw, time, particle) and, with include_positions, "x"
        (chain, draw, time, particle, dim).
    cell_names, dim_names : coordinates of the cell and dim dims.
    attrs : stored as the groups' attributes (e.g. the head and data names).

    Returns
    -------
    arviz.InferenceData (arviz 0.x) or xarray DataTree (arviz 1.x).
    """
    import arviz

    posterior: dict[str, np.ndarray] = {}
    predictive: dict[str, np.ndarray] = {}
    dims: dict[str, list[str]] = {}
    coords: dict[str, np.ndarray | list] = {}
    n_cells = n_dims = None
    if growth is not None:
        growth = np.asarray(growth, dtype=np.float64)
        if growth.ndim != 2:
            raise ValueError(f"growth draws must have shape (S, N), got {growth.shape}")
        posterior["growth"] = growth[None]
        dims["growth"] = ["cell"]
        n_cells = growth.shape[1]
    if velocity is not None:
        velocity = np.asarray(velocity, dtype=np.float64)
        if velocity.ndim != 3 or (n_cells is not None and velocity.shape[1] != n_cells):
            raise ValueError(f"velocity draws must have shape (S, N, D), got {velocity.shape}")
        posterior["velocity"] = velocity[None]
        dims["velocity"] = ["cell", "dim"]
        n_cells, n_dims = velocity.shape[1], velocity.shape[2]
    if trajectories is not None:
        predictive["mass"] = trajectories.mass[None]
        predictive["log_w"] = trajectories.log_w[None]
        dims["mass"] = ["time"]
        dims["log_w"] = ["time", "particle"]
        coords["time"] = np.asarray(trajectories.times, dtype=np.float64)
        if include_positions:
            predictive["x"] = trajectories.x[None]
            dims["x"] = ["time", "particle", "dim"]
            n_dims = trajectories.x.shape[-1]
    if not posterior and not predictive:
        raise ValueError("nothing to export: pass growth, velocity or trajectories")
    if n_cells is not None:
        coords["cell"] = list(cell_names) if cell_names is not None else np.arange(n_cells)
    if n_dims is not None:
        coords["dim"] = list(dim_names) if dim_names is not None else np.arange(n_dims)
    groups = {"posterior": posterior or None, "posterior_predictive": predictive or None}
    groups = {k: v for k, v in groups.items() if v}
    if _arviz_major() >= 1:  # arviz 1.x: from_dict({group: {var: array}}) -> DataTree
        out = arviz.from_dict(groups, coords=coords, dims=dims)
        if attrs:
            out.attrs.update(attrs)
        return out
    return arviz.from_dict(**groups, coords=coords, dims=dims, attrs=attrs or {})
