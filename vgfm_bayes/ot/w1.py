"""Wasserstein-1 between weighted predictions and observed cells (DESIGN 2.4 and 4)."""

from __future__ import annotations

import numpy as np
import ot
import torch

EMD_MAX_ITER = 10_000_000  # network simplex needs ~1e6 iterations for 2,000 x 2,000 problems


def w1_exact(x: np.ndarray, w: np.ndarray, y: np.ndarray) -> float:
    """Exact W1 (EMD, Euclidean cost) between sum_i w_i delta_{x_i} / sum(w) and uniform y.

    Parameters
    ----------
    x : ndarray, shape (n, D) -- predicted particles.
    w : ndarray, shape (n,) -- their non-negative weights (normalised here).
    y : ndarray, shape (m, D) -- observed cells, uniform weights.
    """
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    a = np.asarray(w, dtype=np.float64)
    a = a / a.sum()
    b = np.full(len(y), 1.0 / len(y))
    cost = ot.dist(x, y, metric="euclidean")
    return float(ot.emd2(a, b, cost, numItermax=EMD_MAX_ITER))


def w1_loss(x: torch.Tensor, log_w: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Differentiable W1 for training: gradients reach positions (through the cost) and weights.

    POT's emd2 on torch tensors returns the optimal plan as d/dcost and the dual potentials as
    d/da; with a = softmax(log_w) the potentials' free constant cancels, so the growth network
    gets a well-defined gradient (the reference code's detached plan gives it none).

    Parameters
    ----------
    x : Tensor, shape (n, D); log_w : Tensor, shape (n,); y : Tensor, shape (m, D).
    """
    a = torch.softmax(log_w.to(torch.float64), dim=0)
    b = torch.full((y.shape[0],), 1.0 / y.shape[0], dtype=torch.float64, device=y.device)
    cost = torch.cdist(x.to(torch.float64), y.to(torch.float64))
    return ot.emd2(a, b, cost, numItermax=EMD_MAX_ITER).to(x.dtype)
