"""One entry point for every data source: a TimeCourse, AnnData, .h5ad / CSV path or bundled
data set name (the readers are in data/io.py, the bundled sets in data/datasets.py)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np

from .datasets import DATASETS, is_bundled, load
from .io import adata_timecourse, anndata_times, open_h5ad, read_csv, read_h5ad, resolve_rep
from .timecourse import DataError, TimeCourse


def as_timecourse(
    data,
    time_key: str | None = None,
    rep: str | None = None,
    masses: np.ndarray | None = None,
    time_map: Mapping[str, float] | None = None,
) -> tuple[TimeCourse, dict | None]:
    """A TimeCourse from a TimeCourse, AnnData, .h5ad / CSV path or bundled name, and for
    AnnData input where it came from: {"time_key", "rep" (resolved), "time_map" (as given),
    "labels" (label -> number used)}; None for other input."""
    if isinstance(data, TimeCourse):
        if masses is None:
            return data, None
        return TimeCourse(data.times, data.x, masses, data.var_names, name=data.name), None
    is_anndata = hasattr(data, "obs") and hasattr(data, "obsm")
    if not is_anndata and Path(str(data)).suffix.lower() != ".h5ad":
        return load_data(data, time_key=time_key, rep=rep, masses=masses), None
    name = "adata" if is_anndata else Path(str(data)).stem
    if time_key is None:
        h5ad = f"{data}: an .h5ad needs --time-key"
        what = "AnnData input needs time_key" if is_anndata else h5ad
        raise DataError(f"{what} (the obs column with each cell's time)")
    adata = data if is_anndata else open_h5ad(data)
    times, labels = anndata_times(adata, time_key, time_map)
    rep = resolve_rep(adata, rep)
    tc = adata_timecourse(adata, times, rep, masses, name)
    source = {"time_key": time_key, "rep": rep, "time_map": time_map, "labels": labels}
    return tc, source


def load_data(
    source: str | Path,
    time_key: str | None = None,
    rep: str | None = None,
    masses: np.ndarray | None = None,
    time_map: Mapping[str, float] | None = None,
) -> TimeCourse:
    """Load a bundled data set by name, a .csv file or an .h5ad file (``rep`` and
    ``time_map`` apply to .h5ad only; see :func:`from_anndata`)."""
    if is_bundled(str(source)):
        tc = load(str(source))
        if masses is None:
            return tc
        return TimeCourse(tc.times, tc.x, masses, tc.var_names, name=tc.name)
    path = Path(source)
    suffix = path.suffix.lower()
    if suffix == ".gz":  # only CSVs are read compressed ("cells.csv.gz")
        suffix = (Path(path.stem).suffix.lower() or ".csv") + ".gz"
    if suffix == ".h5ad":
        if time_key is None:
            raise DataError(f"{path}: an .h5ad needs --time-key (the obs column with times)")
        return read_h5ad(path, time_key=time_key, rep=rep, masses=masses, time_map=time_map)
    if suffix in (".csv", ".txt", ".tsv", ".csv.gz", ".txt.gz", ".tsv.gz") or not suffix:
        if not path.exists():
            raise DataError(
                f"{source}: no such file, and not a bundled data set ({', '.join(DATASETS)})"
            )
        return read_csv(path, time_key=time_key or "samples", masses=masses)
    raise DataError(f"{path}: unsupported file type {suffix!r}; use .csv (or .csv.gz) or .h5ad")
