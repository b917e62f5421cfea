"""Mini-batch SROT: VGFM targets without an n x m dense plan (issue 4, scale).

The full SROT plan of an interval is an n x m dense matrix (plus the solver's temporaries of the
same size): 100,000 x 120,000 cells would need about 100 GB per array. The mini-batch mode
replaces it by many small problems:

1. Cells of both snapshots are randomly permuted and cut into B blocks of about ``batch`` source
   cells and m / B target cells (every cell is in exactly one block; ``repeats`` independent
   partitions can be averaged).
2. SROT is solved on each block pair (source block b, target block b) with the same eps, tau and
   cost normalisation as the full problem. Source masses stay 1 per cell and the target masses of
   a block are set so the block carries its share of the full interval's mass,
   b_j = n_b * (M_{k+1} / M_k) / m_b, so the row sums r_i are on the scale of the full problem
   (mean r_i = M_{k+1} / M_k) and gamma_i = log(r_i) / dt needs no further rescaling.
   With several repeats the plan is their average, so r_i is the mean over repeats.
3. Only O(n + m) numbers are kept per partition: the row sums, the target potentials g_j and a
   block-ordered copy of the (scaled) target cells. A pair is sampled as
   (repeat, i) ~ r_i^(repeat), then j from the block row pi_ij / r_i = softmax_j((g_j - C_ij) /
   eps), rebuilt on demand for the sampled sources only: with C_ij = |x_i|^2 + |y_j|^2 - 2 x_i.y_j
   the row's logits are base_j + 2 x_i.y_j / eps up to a constant (base_j = (g_j - |y_j|^2) / eps
   precomputed), one batched matrix-vector product, then inverse-CDF sampling.

The approximation. Each block is an unbiased subsample of both snapshots, so the local ratio of
target to source cells a block sees is right in expectation, but noisier, and a source cell can
only be paired with its block's targets: the coupling is blurrier than the full plan's (the
known mini-batch OT bias), and row sums vary more from cell to cell. Larger blocks and more
repeats shrink both effects; per-cluster mean growth targets agree with the full plan's (tested
in tests/test_minibatch.py). The cost is normalised by the maximum squared distance over ALL
pairs (computed in chunks), as in the full problem, so eps and tau mean the same thing in both
modes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from .interval import IntervalTargets
from .srot import SROTError, solve_srot, source_potential, squared_cost

# Full-plan memory per source x target pair: the solver holds the cost, the log-kernel and one
# temporary (float64), interval_plans keeps the plan, its cast copy and the flattened CDF.
DENSE_BYTES_PER_PAIR = 6 * 8
AUTO_BATCH = 1024  # block size chosen in auto mode (about 0.5 s per SROT block on one CPU core)
GATHER_BYTES = 64 * 2**20  # working memory for rebuilding plan rows while sampling


def dense_bytes(n: int, m: int) -> int:
    """Approximate peak memory of a full n x m SROT plan with its temporaries, in bytes."""
    return n * m * DENSE_BYTES_PER_PAIR


def choose_srot_batch(n: int, m: int, srot_batch: int | None, memory_mb: float) -> int | None:
    """Source cells per SROT block, or None for the full plan.

    srot_batch : an explicit block size (>= n means the full plan), or None for auto: the full
        plan when it fits ``memory_mb``, else blocks of AUTO_BATCH source cells (fewer when even
        one block of that size would not fit).
    """
    if srot_batch is not None:
        if srot_batch < 2:
            raise ValueError(f"srot_batch must be at least 2 source cells, got {srot_batch}")
        return None if srot_batch >= n else int(srot_batch)
    budget = memory_mb * 2**20
    if dense_bytes(n, m) <= budget:
        return None
    ratio = m / n
    fitting = int(math.sqrt(budget / (DENSE_BYTES_PER_PAIR * ratio)))
    return max(2, min(AUTO_BATCH, fitting))


def _clusters(z: torch.Tensor, k: int, chunk_bytes: int):
    """k seeded random points of z as centres, each point's nearest centre and each cluster's
    radius (max distance of a member to its centre): the pieces of a triangle-inequality bound."""
    gen = torch.Generator().manual_seed(0)
    centres = z[torch.randperm(z.shape[0], generator=gen)[:k].to(z.device)]
    label = torch.empty(z.shape[0], dtype=torch.long, device=z.device)
    dist = torch.empty(z.shape[0], dtype=z.dtype, device=z.device)
    rows = max(1, chunk_bytes // (8 * k))
    for lo in range(0, z.shape[0], rows):
        d = torch.cdist(z[lo : lo + rows], centres, compute_mode="donot_use_mm_for_euclid_dist")
        dist[lo : lo + rows], label[lo : lo + rows] = d.min(1)
    radius = torch.zeros(k, dtype=z.dtype, device=z.device).scatter_reduce(0, label, dist, "amax")
    return centres, label, radius


def max_sq_distance(x: torch.Tensor, y: torch.Tensor, chunk_bytes: int = 64 * 2**20) -> float:
    """max_ij ||x_i - y_j||^2 over all pairs, exactly, in bounded memory.

    The cost normaliser of the full problem. Branch and bound: both sets are split into about
    sqrt(n) clusters around random members; a pair of clusters (a, b) can hold a pair farther
    apart than the best found so far, L, only if |c_a - c_b| + r_a + r_b > L (triangle
    inequality). L starts at the largest centre-to-centre distance (centres are members), and
    the surviving cluster pairs are scanned exactly, most promising first, in row chunks of
    ``chunk_bytes``. Near-linear for clustered or low-dimensional data (the old single-centre
    bound left a third of the cells as candidates: O(n m)); worst case O(n m D), memory
    O(chunk + n).
    """
    kx = max(1, min(512, math.isqrt(x.shape[0])))
    ky = max(1, min(512, math.isqrt(y.shape[0])))
    cx, lx, rx = _clusters(x, kx, chunk_bytes)
    cy, ly, ry = _clusters(y, ky, chunk_bytes)
    centre = torch.cdist(cx, cy, compute_mode="donot_use_mm_for_euclid_dist")  # (kx, ky)
    best = float(centre.max())
    bound = centre + rx[:, None] + ry[None, :]
    slack = 1e-9 * max(best, 1.0)  # the bound is exact arithmetic only up to rounding
    order = torch.argsort(bound.max(1).values, descending=True).tolist()
    members_y = [torch.nonzero(ly == b).squeeze(1) for b in range(ky)]
    for a in order:
        alive = torch.nonzero(bound[a] > best - slack).squeeze(1)
        if alive.numel() == 0:
            break  # clusters come by their best bound, so no later one has a live pair
        xa = x[lx == a]
        ya = y[torch.cat([members_y[b] for b in alive.tolist()])]
        rows = max(1, chunk_bytes // (8 * max(1, ya.shape[0])))
        for lo in range(0, xa.shape[0], rows):
            d = torch.cdist(xa[lo : lo + rows], ya, compute_mode="donot_use_mm_for_euclid_dist")
            best = max(best, float(d.max()))
    return best * best


@dataclass(frozen=True)
class MiniBatchPlan(IntervalTargets):
    """Mini-batch SROT of one interval: row sums and block potentials, no dense plan.

    Attributes
    ----------
    t0, t1 : interval ends in the user's time units.
    x0 : Tensor, shape (n, D) -- source cells (fit dtype).
    x1 : Tensor, shape (m, D) -- target cells (fit dtype).
    row_sums : Tensor, shape (n,), float64 -- mass each source cell becomes, mean over repeats.
    rep_cdf : Tensor, shape (R * n,), float64 -- cumulative row sums over (repeat, cell), so
        (repeat, i) ~ r_i^(repeat) is one binary search.
    block_of : Tensor, shape (R, n), long -- block of each source cell in each repeat.
    block_targets : Tensor, shape (R, B, mb), long -- target cells of each block (padded with 0).
    block_size : Tensor, shape (R, B), long -- number of real targets in each block.
    block_y : Tensor, shape (R, B, mb, D), float64 -- the block's target cells / sqrt(cost_scale).
    block_base : Tensor, shape (R, B, mb), float64 -- (g_j - |y_j|^2) / eps on the scaled cells,
        -inf on padding.
    cost_scale : the squared-distance normaliser (1 when the cost is not normalised).
    eps : the entropic regularisation the blocks were solved with.
    batch : nominal source cells per block; repeats : R.
    """

    t0: float
    t1: float
    x0: torch.Tensor
    x1: torch.Tensor
    row_sums: torch.Tensor
    rep_cdf: torch.Tensor
    block_of: torch.Tensor
    block_targets: torch.Tensor
    block_size: torch.Tensor
    block_y: torch.Tensor
    block_base: torch.Tensor
    cost_scale: float
    eps: float
    batch: int
    repeats: int

    def sample_indices(
        self, size: int, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``size`` pairs (i, j) from the averaged mini-batch plan, with replacement.

        Returns i, j : Tensor, shape (size,), long, on the plan's device.
        """
        dev = self.x0.device
        n = self.x0.shape[0]
        draw = torch.rand(size, dtype=torch.float64, device=dev, generator=generator)
        flat = torch.searchsorted(self.rep_cdf, draw * self.rep_cdf[-1])
        flat = flat.clamp_max(self.rep_cdf.numel() - 1)
        rep, i = flat // n, flat % n
        blk = self.block_of[rep, i]
        mb = self.block_targets.shape[-1]
        xs = self.x0[i].to(torch.float64) / math.sqrt(self.cost_scale)  # (size, D)
        u = torch.rand(size, 1, dtype=torch.float64, device=dev, generator=generator)
        chunk = max(1, GATHER_BYTES // (8 * mb * (self.x0.shape[1] + 3)))
        js = []
        for lo in range(0, size, chunk):
            r, b = rep[lo : lo + chunk], blk[lo : lo + chunk]
            dot = torch.bmm(self.block_y[r, b], xs[lo : lo + chunk, :, None]).squeeze(-1)
            logits = self.block_base[r, b] + (2.0 / self.eps) * dot  # (c, mb)
            w = (logits - logits.max(1, keepdim=True).values).exp_()
            cdf = w.cumsum_(1)
            k = torch.searchsorted(cdf, u[lo : lo + chunk] * cdf[:, -1:], right=True)
            k = torch.minimum(k.squeeze(1), self.block_size[r, b] - 1)
            js.append(self.block_targets[r, b].gather(1, k[:, None]).squeeze(1))
        return i, torch.cat(js)


def minibatch_srot(
    x0: torch.Tensor,
    x1: torch.Tensor,
    eps: float,
    tau: float,
    mass_ratio: float,
    batch: int,
    *,
    normalize_cost: bool = False,
    repeats: int = 1,
    generator: torch.Generator | None = None,
    t0: float = 0.0,
    t1: float = 1.0,
    dtype: torch.dtype = torch.float32,
) -> MiniBatchPlan:
    """Solve SROT on random mini-batches of one interval (see the module notes).

    Parameters
    ----------
    x0 : Tensor, shape (n, D) -- source cells; x1 : Tensor, shape (m, D) -- target cells.
    eps, tau, normalize_cost : as for ``solve_srot`` (the normaliser is the max over all pairs).
    mass_ratio : M_{k+1} / M_k, the relative mass the interval's targets carry.
    batch : source cells per block (blocks get about batch * m / n target cells).
    repeats : independent random partitions, averaged.
    generator : for the partitions (on x0's device); default the global RNG.
    dtype : dtype of the stored cells (float64 is used for the solves).

    Returns
    -------
    MiniBatchPlan; raises SROTError when a block's plan fails its checks.
    """
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    dev = x0.device
    x64, y64 = x0.detach().to(torch.float64), x1.detach().to(torch.float64)
    n, m = x64.shape[0], y64.shape[0]
    n_blocks = max(1, min(math.ceil(n / batch), m // 2, n // 2))
    scale = max_sq_distance(x64, y64) if normalize_cost else 1.0
    scale = max(scale, torch.finfo(torch.float64).tiny)
    root = math.sqrt(scale)
    xs, ys = x64 / root, y64 / root
    opts = dict(dtype=torch.float64, device=dev)
    block_of = torch.empty(repeats, n, dtype=torch.long, device=dev)
    rows = torch.empty(repeats, n, **opts)
    mb = math.ceil(m / n_blocks)
    targets = torch.zeros(repeats, n_blocks, mb, dtype=torch.long, device=dev)
    sizes = torch.zeros(repeats, n_blocks, dtype=torch.long, device=dev)
    block_y = torch.zeros(repeats, n_blocks, mb, x64.shape[1], **opts)
    base = torch.full((repeats, n_blocks, mb), -math.inf, **opts)
    previous = None  # (targets, g) of the last solved block: the next block's warm start
    for r in range(repeats):
        src = torch.tensor_split(torch.randperm(n, generator=generator, device=dev), n_blocks)
        tgt = torch.tensor_split(torch.randperm(m, generator=generator, device=dev), n_blocks)
        for b, (si, tj) in enumerate(zip(src, tgt, strict=True)):
            mass = torch.full((len(tj),), len(si) * mass_ratio / len(tj), **opts)
            f_init = None
            if previous is not None:
                # blocks are random halves of the same snapshots: the last block's g, through
                # the optimality conditions, places this block's sources near their optimum
                prev_y, prev_g = previous
                cost = squared_cost(xs[si], prev_y)
                f_init = source_potential(cost, prev_g, eps, tau, torch.zeros(len(si), **opts))
            try:
                res = solve_srot(xs[si], ys[tj], eps, tau, b=mass, f_init=f_init)
            except SROTError:
                if f_init is None:
                    raise
                res = solve_srot(xs[si], ys[tj], eps, tau, b=mass)  # cold, as if first
            previous = (ys[tj], res.g)
            block_of[r, si] = b
            rows[r, si] = res.row_sums
            targets[r, b, : len(tj)] = tj
            sizes[r, b] = len(tj)
            block_y[r, b, : len(tj)] = ys[tj]
            base[r, b, : len(tj)] = (res.g - ys[tj].square().sum(1)) / eps
    return MiniBatchPlan(
        t0=float(t0),
        t1=float(t1),
        x0=x0.detach().to(dtype),
        x1=x1.detach().to(dtype),
        row_sums=rows.mean(0),
        rep_cdf=rows.reshape(-1).cumsum(0),
        block_of=block_of,
        block_targets=targets,
        block_size=sizes,
        block_y=block_y,
        block_base=base,
        cost_scale=scale,
        eps=float(eps),
        batch=int(batch),
        repeats=int(repeats),
    )
