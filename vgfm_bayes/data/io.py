"""Readers: CSV (time column + coordinates) and AnnData / .h5ad (obs time key + obsm rep).

Which reader a source needs (bundled name, file type, AnnData object) is decided in
data/sources.py, above both this module and the bundled data sets (data/datasets.py).
"""

from __future__ import annotations

import csv
import gzip
import io
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .timecourse import DataError, TimeCourse
from .timelabels import time_values

if TYPE_CHECKING:  # anndata is imported lazily: it is slow to import and only needed here
    import anndata


def read_csv(
    path: str | Path,
    time_key: str = "samples",
    masses: np.ndarray | None = None,
) -> TimeCourse:
    """Read a CSV with one cell per row: a numeric time column and numeric coordinate columns.

    Parameters
    ----------
    path : path to the file; a name ending in ".gz" is read through gzip (the bundled
        high-dimensional benchmarks are shipped that way, byte-identical once decompressed).
    time_key : name of the time column (default "samples", as in the benchmark files).
    masses : optional relative masses per sorted time point.
    """
    path = Path(path)
    if path.is_dir():
        raise DataError(f"{path}: is a folder, not a data file")
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    gzipped = path.suffix.lower() == ".gz"
    try:
        opener = gzip.open if gzipped else open
        with opener(path, "rt", newline="", encoding="utf-8") as fh:
            text = fh.read()
        if "\x00" in text:
            raise DataError(f"{path}: not a readable CSV file (it holds NUL bytes: binary data)")
        rows = list(csv.reader(io.StringIO(text, newline="")))
    except UnicodeDecodeError as err:
        raise DataError(f"{path}: not a text CSV file (cannot decode it as UTF-8)") from err
    except csv.Error as err:  # e.g. NUL bytes: a binary file with a .csv name
        raise DataError(f"{path}: not a readable CSV file ({err})") from err
    except (OSError, EOFError) as err:  # permissions, a broken device, a bad or cut .gz
        reason = getattr(err, "strerror", None) or err
        raise DataError(f"{path}: cannot read the file ({reason})") from err
    rows = [r for r in rows if any(cell.strip() for cell in r)]
    if not rows:
        raise DataError(f"{path}: the file is empty")
    header = [h.strip() for h in rows[0]]
    body = rows[1:]
    if not body:
        raise DataError(f"{path}: only a header line, no cells")
    if time_key not in header:
        raise DataError(
            f"{path}: no time column {time_key!r} (columns: {', '.join(header[:8])}"
            f"{', ...' if len(header) > 8 else ''}); pass --time-key NAME"
        )
    for i, r in enumerate(body):
        if len(r) != len(header):
            raise DataError(
                f"{path}: line {i + 2} has {len(r)} fields, the header has {len(header)}"
            )
    t_col = header.index(time_key)
    coord_cols = [j for j in range(len(header)) if j != t_col]
    if not coord_cols:
        raise DataError(f"{path}: no coordinate columns besides {time_key!r}")
    try:
        time = np.array([float(r[t_col]) for r in body])
    except ValueError as err:
        raise DataError(
            f"{path}: time column {time_key!r} is not numeric ({err}); map labels to numbers"
        ) from err
    try:
        x = np.array([[float(r[j]) for j in coord_cols] for r in body])
    except ValueError as err:
        raise DataError(f"{path}: a coordinate is not numeric ({err})") from err
    name = Path(path.stem).stem if gzipped else path.stem  # "a.csv.gz" -> "a"
    return TimeCourse.from_arrays(
        x, time, masses=masses, var_names=[header[j] for j in coord_cols], name=name
    )


def resolve_rep(adata: anndata.AnnData, rep: str | None) -> str:
    """The representation to use: ``rep`` itself (checked), or for None ``"X_pca"`` when the
    AnnData has it; otherwise a DataError saying which to give."""
    keys = ", ".join(map(str, adata.obsm.keys())) or "none"
    if rep is None:
        if "X_pca" in adata.obsm:
            return "X_pca"
        raise DataError(
            f"the AnnData has no obsm['X_pca'], so rep must be given (obsm keys: {keys}): pass "
            "rep='X_<basis>' / --rep KEY for an embedding, rep='X' / --rep X for the main "
            "matrix, or run sc.pp.pca(adata) first"
        )
    if rep == "X":
        if adata.X is None:
            raise DataError("the AnnData has no X matrix; pass rep / --rep with an obsm key")
        return rep
    if rep not in adata.obsm:
        raise DataError(
            f"no obsm key {rep!r} in the AnnData (obsm keys: {keys}); pass --rep KEY or X"
        )
    return rep


def rep_rows(adata: anndata.AnnData, rep: str, rows=None, dtype=np.float64) -> np.ndarray:
    """Dense coordinates of the cells ``rows`` (default all) in ``rep``; a sparse X (scipy
    csr / csc matrix or array) is densified for those rows only. Shape (len(rows), D)."""
    x = adata.X if rep == "X" else adata.obsm[rep]
    if hasattr(x, "to_numpy"):  # a DataFrame in obsm
        x = x.to_numpy()
    if rows is not None:
        x = x[rows]
    if hasattr(x, "toarray"):
        x = x.toarray()
    try:
        return np.asarray(x, dtype=dtype)
    except (TypeError, ValueError) as err:
        raise DataError(f"representation {rep!r} is not numeric") from err


def anndata_times(
    adata: anndata.AnnData,
    time_key: str,
    time_map: Mapping[str, float] | None = None,
    map_name: str = "the time_map",
) -> tuple[np.ndarray, dict[str, float]]:
    """Each cell's time from obs[time_key] (data/timelabels.py), shape (n_obs,), and the label
    mapping used."""
    if time_key not in adata.obs:
        raise DataError(
            f"no obs column {time_key!r} in the AnnData (obs columns: "
            f"{', '.join(map(str, adata.obs.columns[:8]))}); pass --time-key NAME"
        )
    return time_values(adata.obs[time_key], time_key, time_map, map_name)


def from_anndata(
    adata: anndata.AnnData,
    time_key: str,
    rep: str | None = None,
    masses: np.ndarray | None = None,
    name: str = "adata",
    time_map: Mapping[str, float] | None = None,
) -> TimeCourse:
    """Build a time course from an AnnData without touching it.

    Parameters
    ----------
    adata : AnnData with cells as observations.
    time_key : obs column holding each cell's time: numbers, numeric strings, labels carrying
        one number ("day2", "E7.5") or an ordered categorical (see data/timelabels.py).
    rep : obsm key of the embedding (e.g. "X_pca"), or "X" for the main matrix (dense or scipy
        sparse); None: "X_pca" when present, else a DataError asking for it.
    time_map : label -> number, overriding how labels are read.
    """
    times, _ = anndata_times(adata, time_key, time_map)
    return adata_timecourse(adata, times, resolve_rep(adata, rep), masses, name)


def adata_timecourse(adata, times: np.ndarray, rep: str, masses, name: str) -> TimeCourse:
    """The time course of cells with ``times`` (n_obs,) in ``rep`` (resolved) of ``adata``."""
    x = rep_rows(adata, rep)
    if rep == "X":
        var_names = [str(v) for v in adata.var_names]
    else:
        var_names = [f"{rep}_{i + 1}" for i in range(x.shape[1])]
    return TimeCourse.from_arrays(x, times, masses=masses, var_names=var_names, name=name)


def open_h5ad(path: str | Path) -> anndata.AnnData:
    """Read an .h5ad file into memory, with one clear error for a missing or bad file."""
    import anndata as ad

    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    try:
        return ad.read_h5ad(path)
    except Exception as err:  # h5py / anndata raise many types for a bad file
        raise DataError(f"{path}: not a readable .h5ad file ({type(err).__name__})") from err


def read_h5ad(
    path: str | Path,
    time_key: str,
    rep: str | None = None,
    masses: np.ndarray | None = None,
    time_map: Mapping[str, float] | None = None,
) -> TimeCourse:
    """Read an .h5ad file; see :func:`from_anndata`."""
    adata = open_h5ad(path)
    return from_anndata(
        adata, time_key=time_key, rep=rep, masses=masses, name=Path(path).stem, time_map=time_map
    )


def read_masses(spec: str | Path | None) -> np.ndarray | None:
    """Relative masses per time point from "1,1.3,2.1" or from a file holding such numbers.

    The file may hold one number per line or comma / whitespace separated numbers. Positivity
    and the count per time point are checked by :class:`TimeCourse`.
    """
    if spec is None:
        return None
    text = str(spec)
    path = Path(text)
    looks_numeric = all(c in "0123456789.,+-eE \t" for c in text)
    if path.is_file() or not looks_numeric:
        if not path.is_file():
            raise DataError(f"--masses {text}: no such file (or give numbers like 1,1.4,2)")
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as err:
            raise DataError(f"--masses {path}: cannot read it as text ({err})") from err
    parts = [p for p in text.replace(",", " ").split() if p]
    if not parts:
        raise DataError(f"--masses {spec}: no numbers given")
    try:
        values = np.array([float(p) for p in parts])
    except ValueError as err:
        raise DataError(f"--masses {spec}: not a list of numbers ({err})") from err
    if not np.all(np.isfinite(values)) or np.any(values <= 0):
        raise DataError(
            f"--masses must be positive finite numbers (relative population sizes), got "
            f"{values.tolist()}"
        )
    return values
