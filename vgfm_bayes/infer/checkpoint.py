"""Training checkpoints: atomic writes, safe loading, every random state, stop on signals."""

from __future__ import annotations

import contextlib
import os
import random
import signal
import tempfile
import threading
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

CHECKPOINT_VERSION = 1


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be written or read (unknown version, damaged file)."""


def atomic_write(path: str | Path, write) -> None:
    """Write ``path`` through a temporary file in the same folder, fsync, then os.replace.

    ``write(fh)`` receives a binary file object. A crash at any point leaves either the old
    file or the new one, never a half-written file.
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def save_checkpoint(path: str | Path, state: Mapping[str, Any]) -> None:
    """torch.save ``state`` (tensors, numbers, strings, lists, dicts only) atomically."""
    blob = {"checkpoint_version": CHECKPOINT_VERSION, **state}
    atomic_write(path, lambda fh: torch.save(blob, fh))


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict:
    """Load with torch.load(weights_only=True); refuse unknown versions with a clear error."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no checkpoint file")
    try:
        blob = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # zip / unpickling errors come in many types
        raise CheckpointError(f"{path}: unreadable checkpoint ({type(err).__name__})") from err
    version = blob.get("checkpoint_version") if isinstance(blob, dict) else None
    if version != CHECKPOINT_VERSION:
        raise CheckpointError(
            f"{path}: checkpoint format version {version!r} is not supported (this vgfm-bayes "
            f"reads version {CHECKPOINT_VERSION})"
        )
    return blob


def capture_rng(generators: Mapping[str, torch.Generator | None]) -> dict[str, Any]:
    """Every random state training draws from: torch (CPU and CUDA), Python, NumPy (Pyro seeds
    all three) and the named torch.Generators (pair sampler, distribution fit)."""
    np_state = np.random.get_state()  # noqa: NPY002 -- Pyro seeds NumPy's global state
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "python": random.getstate(),
        "numpy": [np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), *np_state[2:]],
        "generators": {k: g.get_state() for k, g in generators.items() if g is not None},
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: Mapping[str, Any], generators: Mapping[str, torch.Generator | None]) -> None:
    torch.set_rng_state(state["torch"].cpu())
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, cached))  # noqa: NPY002
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])
    for k, g in generators.items():
        if g is not None:
            g.set_state(state["generators"][k].cpu())


class StopRequest:
    """Set by SIGINT / SIGTERM; training checks it between steps, saves, then stops."""

    def __init__(self) -> None:
        self.signum: int | None = None

    @property
    def requested(self) -> bool:
        return self.signum is not None

    @property
    def name(self) -> str:
        return signal.Signals(self.signum).name if self.signum else ""


@contextlib.contextmanager
def stop_on_signals() -> Iterator[StopRequest]:
    """Turn SIGINT / SIGTERM into a stop request for the duration of the block.

    The first signal asks training to stop at the end of the current step (after writing a
    checkpoint); a second one interrupts at once. Outside the main thread nothing is installed.
    """
    stop = StopRequest()
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return

    def handler(signum, frame):
        if stop.requested:
            raise KeyboardInterrupt
        stop.signum = signum

    previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield stop
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
