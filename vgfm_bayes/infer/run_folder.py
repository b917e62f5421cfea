"""Run folders: what a fit writes and reads back, atomically and with a format version.

A finished run holds config.json (the metadata below), weights.pt (the guide's state),
history.json (losses and phase times) and data.npz (the time course, held-out snapshot
included), plus extra text files by name (e.g. metrics.json). An unfinished one, written by a
fit into ``run_dir``, holds fit.json (what it was asked), data.npz and checkpoint.pt (where it
is); ``VGFM.resume`` continues it.

Metadata (config.json and fit.json):

- format 2: {"format_version", "config", "resolved" (the settings resolved before training,
  infer/settings.py), "fit_info" (what the fit produced: SROT safe-mode fallbacks, a head's
  post-fit record, fitted noise scales), "hold_out", "scaling", "data", "anndata", "fields"}
- format 1: the same without "fit_info", whose keys sat in "resolved"; read as format 2.

Folders are written under a temporary name and renamed into place, files through a temporary
file and os.replace, so a crash never leaves a half-written run.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..data import TimeCourse
from .checkpoint import atomic_write
from .settings import split_resolved
from .svi import History

log = logging.getLogger(__name__)

FORMAT_VERSION = 2
READS_VERSIONS = (1, 2)
CONFIG_FILE = "config.json"
WEIGHTS_FILE = "weights.pt"
HISTORY_FILE = "history.json"
DATA_FILE = "data.npz"
# an unfinished fit's run folder: what it was asked (FIT_FILE, data.npz) and where it is
FIT_FILE = "fit.json"
CHECKPOINT_FILE = "checkpoint.pt"


class RunError(RuntimeError):
    """A run folder that cannot be written or read."""


def data_meta(data: TimeCourse) -> dict[str, Any]:
    return {
        "name": data.name,
        "times": data.times.tolist(),
        "masses": data.masses.tolist(),
        "counts": data.counts.tolist(),
        "var_names": list(data.var_names),
    }


def write_data(path: Path, data: TimeCourse) -> None:
    arrays = {f"x{k}": x for k, x in enumerate(data.x)}
    atomic_write(
        path,
        lambda fh: np.savez_compressed(fh, times=data.times, masses=data.masses, **arrays),
    )


def read_data(run: Path, meta: Mapping[str, Any]) -> TimeCourse:
    try:
        with np.load(run / DATA_FILE, allow_pickle=False) as z:
            n = len(z["times"])
            return TimeCourse(
                z["times"],
                tuple(z[f"x{k}"] for k in range(n)),
                z["masses"],
                tuple(meta["data"]["var_names"]),
                name=meta["data"]["name"],
            )
    except (OSError, KeyError, ValueError) as err:
        raise RunError(f"{run / DATA_FILE}: missing or unreadable ({err})") from err


def read_meta(path: Path) -> dict[str, Any]:
    """config.json or fit.json, in format 2 whatever format it was written in."""
    try:
        meta = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise RunError(f"{path}: unreadable ({err})") from err
    version = meta.get("format_version") if isinstance(meta, dict) else None
    if version not in READS_VERSIONS:
        raise RunError(
            f"{path.parent}: run format version {version!r} is not supported (this vgfm-bayes "
            f"reads versions {', '.join(map(str, READS_VERSIONS))}); refit the run"
        )
    if version == 1:
        settings, fit_info = split_resolved(meta.get("resolved", {}))
        meta = {**meta, "format_version": FORMAT_VERSION, "resolved": settings}
        meta["fit_info"] = fit_info
    return meta


def check_new(run: Path) -> None:
    """A folder a fit may create its run in: absent, or an empty folder."""
    if run.exists() and (not run.is_dir() or any(run.iterdir())):
        raise RunError(f"{run} already exists and is not an empty folder; choose a new one")


def write_fit_record(run: Path, meta: Mapping[str, Any], data: TimeCourse) -> None:
    """An unfinished run: fit.json (``meta`` + format and status) and data.npz."""
    record = {
        "format_version": FORMAT_VERSION,
        "status": "unfinished: continue with vgfm-bayes fit --resume RUN",
        **meta,
    }
    write_data(run / DATA_FILE, data)
    text = json.dumps(record, indent=2).encode()
    atomic_write(run / FIT_FILE, lambda fh: fh.write(text))


def is_unfinished(run: Path) -> bool:
    """The folder holds an unfinished fit's files only (a save may replace it)."""
    if not run.is_dir() or not (run / FIT_FILE).is_file() or (run / CONFIG_FILE).exists():
        return False
    return {p.name for p in run.iterdir()} <= {FIT_FILE, CHECKPOINT_FILE, DATA_FILE}


def write_run(
    run: Path,
    meta: Mapping[str, Any],
    guide_state: Mapping[str, torch.Tensor],
    history: History,
    data: TimeCourse,
    *,
    extra: Mapping[str, str] | None = None,
    overwrite: bool = False,
) -> Path:
    """Write a finished run folder in one rename (see the module docstring).

    An unfinished run folder (:func:`is_unfinished`) is replaced without ``overwrite``.
    """
    if run.exists() and not run.is_dir():
        raise RunError(f"{run} exists and is a file; choose a folder name for the run")
    if run.exists() and any(run.iterdir()) and not (overwrite or is_unfinished(run)):
        raise RunError(f"{run} already holds files; choose a new folder or pass overwrite")
    state = {k: v.detach().cpu() for k, v in guide_state.items()}
    files: dict[str, Callable[[Path], None]] = {
        CONFIG_FILE: lambda p: p.write_text(
            json.dumps({"format_version": FORMAT_VERSION, **meta}, indent=2)
        ),
        WEIGHTS_FILE: lambda p: torch.save({"format_version": FORMAT_VERSION, "guide": state}, p),
        HISTORY_FILE: lambda p: p.write_text(json.dumps(history.to_dict())),
        DATA_FILE: lambda p: write_data(p, data),
    }
    run.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{run.name}.", dir=run.parent))
    try:
        for name, write in files.items():
            write(tmp / name)
        for name, text in (extra or {}).items():
            (tmp / name).write_text(text)
        if run.exists():
            # swap by renames: the old folder is only deleted once the new one is in place
            old = Path(tempfile.mkdtemp(prefix=f".{run.name}.old.", dir=run.parent))
            os.replace(run, old)
            os.replace(tmp, run)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, run)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    log.info("saved run to %s", run)
    return run


def finished_meta(run: Path) -> dict[str, Any]:
    """A finished run's metadata; an unfinished or foreign folder is a clear RunError."""
    if not (run / CONFIG_FILE).is_file():
        if (run / FIT_FILE).is_file():
            raise RunError(
                f"{run}: an unfinished fit (interrupted or stopped); continue it with "
                f"vgfm-bayes fit --resume {run}"
            )
        raise RunError(f"{run}: not a run folder (no {CONFIG_FILE})")
    return read_meta(run / CONFIG_FILE)


def unfinished_meta(run: Path) -> dict[str, Any]:
    """An unfinished run's fit.json; a finished or foreign folder is a clear RunError."""
    if (run / CONFIG_FILE).is_file():
        raise RunError(f"{run}: this run is finished; there is nothing to resume")
    if not (run / FIT_FILE).is_file():
        raise RunError(f"{run}: not an unfinished run folder (no {FIT_FILE})")
    return read_meta(run / FIT_FILE)


def read_weights(run: Path, device: torch.device | str) -> dict[str, torch.Tensor]:
    """The guide's state from weights.pt (torch.load with weights_only=True)."""
    try:
        blob = torch.load(run / WEIGHTS_FILE, map_location=device, weights_only=True)
    except Exception as err:  # pickle / zip errors come in many types
        raise RunError(f"{run / WEIGHTS_FILE}: unreadable weights ({err})") from err
    if not isinstance(blob, dict) or blob.get("format_version") not in READS_VERSIONS:
        raise RunError(f"{run / WEIGHTS_FILE}: unknown weights format")
    return blob["guide"]


def read_history(run: Path) -> History:
    try:
        hist = json.loads((run / HISTORY_FILE).read_text())
        return History(hist["warmup"], hist["joint"], hist["seconds"])
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError) as err:
        raise RunError(f"{run / HISTORY_FILE}: missing or unreadable ({err})") from err
