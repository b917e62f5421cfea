"""How much of last_layer's spread between mixture components is pair-sampling noise?

Each component of last_layer's mixture (model/laplace.py) shifts the growth network's last layer
by the change of a ridge solution: on the pairs of a bootstrap resample's SROT plans against the
pairs of the trained plans, each set ``laplace_batches`` freshly drawn regression batches. So a
shift holds what the resample changes (the cells' sampling noise, the setting) plus the Monte
Carlo noise of drawing the pairs. This prints, at the observed cells, the growth shifts of the
fitted components beside the shift between two independent batch sets drawn from the *same*
trained plans (Monte Carlo noise alone), with the fitted growth's own spread for scale. No
setting is changed; it only measures.

    python benchmarks/last_layer_mc_noise.py [--data simulation_gene simulator] [--seeds 0]
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from vgfm_bayes import VGFM
from vgfm_bayes.bench import bench_task
from vgfm_bayes.model import laplace as L

REPLICATES = 4


def rms(a: torch.Tensor) -> float:
    return float(a.pow(2).mean().sqrt())


def measure(name: str, seed: int) -> dict[str, float]:
    m = VGFM.from_zoo("last_layer", seed=seed)
    m.prepare(bench_task(name, seed).data)  # the bench's data set names, simulators included
    plans = m.plans
    m.fit(progress=False)
    guide, model, lap = m.guide, m.model, m.guide.laplace
    params, fields, n_eff = guide.map_params(), model.fields, model.n_effective
    head, c = m.head, m.config
    internal = m.scaling.apply(m.data)
    sources, times = internal.x[:-1], internal.times[:-1]  # every interval's source cells
    x = torch.tensor(np.concatenate(sources), dtype=torch.float32)
    t = torch.tensor(
        np.concatenate([np.full(len(s), tt) for s, tt in zip(sources, times, strict=True)]),
        dtype=torch.float32,
    )
    phi = L.features(fields, params, x, t, "g").double()

    def ridge(batches):
        p, y = L.regression(fields, params, batches, "g")
        return L.ridge(p, y, lap.g_alpha.double(), lap.g_beta.double(), n_eff)

    solutions = []
    for r in range(REPLICATES + 1):  # generators apart from every stream the fit used
        gens = m._members.generators(10_000 + r, "cpu")
        sample = m._members.sampler(plans, c.batch_size, c.sigma, gens)
        solutions.append(ridge([sample() for _ in range(head.laplace_batches)]))
    mc = torch.stack([(phi @ (s - solutions[0]).T).squeeze(-1) for s in solutions[1:]])
    comp = torch.stack([(phi @ o.T).squeeze(-1) for o in lap.g_offsets.double()])
    fitted = phi @ L.coefficients(fields, params, "g").double()[0]
    return {
        "components": len(comp),
        "component_rms": rms(comp),
        "mc_rms": rms(mc),
        "growth_sd": float(fitted.std()),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", nargs="+", default=["simulation_gene", "simulator"])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    args = ap.parse_args()
    print(
        "| data | seed | components | component shift, rms | Monte Carlo shift, rms | ratio "
        "| fitted growth, sd over cells |"
    )
    print("|---|---|---|---|---|---|---|")
    for name in args.data:
        for seed in args.seeds:
            r = measure(name, seed)
            ratio = r["mc_rms"] / r["component_rms"]
            print(
                f"| {name} | {seed} | {r['components']} | {r['component_rms']:.4f} | "
                f"{r['mc_rms']:.4f} | {ratio:.3f} | {r['growth_sd']:.4f} |",
                flush=True,
            )
    print(
        "\nGrowth shifts at the observed cells (internal time units). Monte Carlo: two sets of "
        f"laplace_batches batches from the trained plans ({REPLICATES} replicates)."
    )


if __name__ == "__main__":
    main()
