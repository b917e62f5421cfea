"""infer/adam.py: torch.optim.Adam's steps and state format, without torch.optim's start-up."""

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from vgfm_bayes.infer.adam import Adam

ROOT = Path(__file__).resolve().parents[1]


def _params(seed=0):
    gen = torch.Generator().manual_seed(seed)
    return [
        torch.randn(5, 3, generator=gen).requires_grad_(True),
        torch.randn(3, generator=gen).requires_grad_(True),
        torch.randn(2, generator=gen).requires_grad_(True),  # never gets a gradient
    ]


def _step(opt, params, gen):
    opt.zero_grad(set_to_none=True)
    loss = (params[0] ** 2).sum() * torch.rand((), generator=gen) + (params[1] ** 3).sum()
    loss.backward()
    opt.step()


def test_steps_are_torch_adams_bitwise():
    ours, theirs = _params(), _params()
    a, b = Adam(ours, lr=1e-2), torch.optim.Adam(theirs, lr=1e-2)
    ga, gb = torch.Generator().manual_seed(1), torch.Generator().manual_seed(1)
    for _ in range(7):
        _step(a, ours, ga)
        _step(b, theirs, gb)
    for p, q in zip(ours, theirs, strict=True):
        assert torch.equal(p, q)
    assert not torch.equal(ours[0], _params()[0])  # it moved
    assert a.state[2] == {} and torch.equal(ours[2], _params()[2])  # no gradient, no state


@pytest.mark.parametrize("direction", ["torch -> ours", "ours -> torch"])
def test_state_dicts_load_into_each_other(direction):
    """A checkpoint of either optimiser resumes in the other to the same bits."""
    ref, first = _params(), _params()
    ref_opt = torch.optim.Adam(ref, lr=3e-3)
    opt = torch.optim.Adam(first, lr=3e-3) if direction == "torch -> ours" else Adam(first, lr=3e-3)
    g_ref, g = torch.Generator().manual_seed(2), torch.Generator().manual_seed(2)
    for _ in range(4):
        _step(ref_opt, ref, g_ref)
        _step(opt, first, g)
    state = opt.state_dict()
    second = [p.detach().clone().requires_grad_(True) for p in first]
    resumed = Adam(second, lr=1.0) if direction == "torch -> ours" else torch.optim.Adam(second)
    resumed.load_state_dict(state)
    assert resumed.param_groups[0]["lr"] == 3e-3  # the saved settings, as torch restores them
    for _ in range(3):
        _step(ref_opt, ref, g_ref)
        _step(resumed, second, g)
    for p, q in zip(ref, second, strict=True):
        assert torch.equal(p, q)


def test_a_state_for_other_parameters_is_refused():
    opt = Adam(_params()[:2])
    with pytest.raises(ValueError, match="holds 3 parameters"):
        opt.load_state_dict(Adam(_params()).state_dict())
    amsgrad = torch.optim.Adam(_params(), amsgrad=True).state_dict()
    with pytest.raises(ValueError, match="amsgrad"):
        Adam(_params()).load_state_dict(amsgrad)


def test_a_fit_never_imports_torch_dynamo(tmp_path):
    """torch.optim's optimisers import torch._dynamo (1.5 s) when built; a fit (SROT's L-BFGS,
    the SVI loop's Adam) must not."""
    code = (
        "import sys\n"
        "from tests.tiny import TINY, make_tiny\n"
        "from vgfm_bayes import VGFM\n"
        "VGFM(**TINY).fit(make_tiny(), progress=False)\n"
        "assert 'torch._dynamo' not in sys.modules, 'torch._dynamo was imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=300, cwd=ROOT)
