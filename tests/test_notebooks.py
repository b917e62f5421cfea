"""Execute every notebook in notebooks/ top to bottom in fast mode (VGFM_FAST=1), and with
``--runslow`` in full (what a reader runs; CI's slow set).

Marked ``notebooks``: the fast runs are in the default ``pytest`` (and ``make test``); deselect
them with ``pytest -m "not notebooks"``. The kernel runs in a temporary folder, so the
notebooks write nothing into the checkout.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import nbclient
import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
CELL_TIMEOUT_S = 300


def test_notebooks_found():
    assert len(NOTEBOOKS) >= 3, f"expected the notebooks in {ROOT / 'notebooks'}"


def _execute(path: Path, tmp_path: Path, monkeypatch, fast: bool) -> float:
    """Run the notebook in a kernel whose working folder is tmp_path; returns its seconds."""
    if fast:
        monkeypatch.setenv("VGFM_FAST", "1")
    else:
        monkeypatch.delenv("VGFM_FAST", raising=False)
    monkeypatch.setenv("MPLBACKEND", "Agg")
    monkeypatch.setenv("OMP_NUM_THREADS", os.environ.get("OMP_NUM_THREADS", "1"))
    # the kernel imports vgfm_bayes from this checkout even without an installed package
    monkeypatch.setenv(
        "PYTHONPATH", os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    )
    nb = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(
        nb,
        timeout=CELL_TIMEOUT_S if fast else 4 * CELL_TIMEOUT_S,
        kernel_name="python3",
        resources={"metadata": {"path": str(tmp_path)}},
    )
    start = time.perf_counter()
    client.execute()  # raises CellExecutionError with the failing cell's traceback
    seconds = time.perf_counter() - start
    errors = [
        o
        for c in nb.cells
        if c.cell_type == "code"
        for o in c.get("outputs", [])
        if o.get("output_type") == "error"
    ]
    assert not errors, errors
    return seconds


@pytest.mark.notebooks
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs_in_fast_mode(path, tmp_path, monkeypatch):
    seconds = _execute(path, tmp_path, monkeypatch, fast=True)
    assert seconds < 120, f"{path.name} took {seconds:.0f} s in fast mode; keep it fast"


@pytest.mark.slow
@pytest.mark.notebooks
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs_in_full(path, tmp_path, monkeypatch):
    _execute(path, tmp_path, monkeypatch, fast=False)
