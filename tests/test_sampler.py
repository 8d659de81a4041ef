"""The one sampler's centred terms (mixing: each source predicted on a view centred on its band)."""

from __future__ import annotations

import pytest
import torch
from diffusers import DDIMScheduler

from s2i.models.sampler import centring_shifts, roll_each, sample

SIDE = 8
_ij = torch.arange(SIDE, dtype=torch.float32)
BLOB = torch.exp(-((_ij[:, None] - 3.5) ** 2 + (_ij[None, :] - 3.5) ** 2) / 2)  # an object in the middle


def halves() -> torch.Tensor:
    """(2, 1, 1, 8, 8) term masks: the left four columns, the right four."""
    m = torch.zeros(2, 1, 1, SIDE, SIDE)
    m[0, ..., :4], m[1, ..., 4:] = 1.0, 1.0
    return m


def test_centring_shifts_move_each_mask_centre_to_the_middle():
    m = halves()[:, 0, 0]
    dy, dx = centring_shifts(m)
    assert dy.tolist() == [0, 0] and dx.tolist() == [2, -2]  # column centres 1.5 and 5.5 -> 3.5
    top = torch.zeros(SIDE, SIDE)
    top[:2] = 1.0
    assert [int(d) for d in centring_shifts(top)] == [3, 0]  # rows 0-1: centre 0.5 -> 3.5
    assert [int(d) for d in centring_shifts(torch.ones(SIDE, SIDE))] == [0, 0]
    assert [int(d) for d in centring_shifts(torch.zeros(SIDE, SIDE))] == [0, 0]  # nothing to centre


def test_roll_each_rolls_every_item_by_its_own_shift():
    x = torch.arange(3 * 2 * SIDE * SIDE, dtype=torch.float32).view(3, 2, SIDE, SIDE)
    dy, dx = torch.tensor([0, 1, -3]), torch.tensor([2, 0, 5])
    want = torch.stack([torch.roll(x[i], (int(dy[i]), int(dx[i])), (1, 2)) for i in range(3)])
    assert torch.equal(roll_each(x, dy, dx), want)
    assert torch.equal(roll_each(roll_each(x, dy, dx), -dy, -dx), x)


def test_centred_terms_by_hand():
    """Two DDIM steps with a stub whose x0 under an embedding e draws ``e[0]`` times an object in
    the middle of whatever it is shown, plus ``x / 2`` (unconditional: ``x / 2``): centred, each
    term's object lands in the middle of its own half, and the arithmetic is
    ``x0 = x0_u + sum_k w_k m_k R_k^-1 (x0_k(R_k x) - x0_u(R_k x))``."""
    sched = DDIMScheduler(num_train_timesteps=10, beta_schedule="linear", prediction_type="sample", clip_sample=False)

    def denoise(x, t, e):
        return e[:, :1, None, None] * BLOB + x / 2

    conds = torch.tensor([[[1.0, 0.0]], [[2.0, 0.0]]])  # K = 2 terms, N = 1 item
    weights = [3.0, 0.5]
    noise = torch.randn(1, 1, SIDE, SIDE, generator=torch.Generator().manual_seed(0))
    got = sample(denoise, sched, conds, weights, noise, steps=2, masks=halves(), centred=True)
    flat = sample(denoise, sched, conds, weights, noise, steps=2, masks=halves())

    ac = sched.alphas_cumprod

    def by_hand(guide):
        x = noise[0, 0].double()
        for t, prev in ((5, ac[0]), (0, torch.tensor(1.0))):  # set_alpha_to_one: the last step lands on x0
            a, prev = float(ac[t]), float(prev)
            x0 = x / 2 + guide
            eps = (x - a**0.5 * x0) / (1 - a) ** 0.5
            x = prev**0.5 * x0 + (1 - prev) ** 0.5 * eps
        return x

    m = halves()[:, 0, 0]
    centred_guide = 3.0 * m[0] * torch.roll(BLOB, -2, 1) + 0.5 * 2.0 * m[1] * torch.roll(BLOB, 2, 1)
    torch.testing.assert_close(got[0, 0].double(), by_hand(centred_guide.double()), rtol=0, atol=1e-5)
    flat_guide = (3.0 * m[0] + 0.5 * 2.0 * m[1]) * BLOB
    torch.testing.assert_close(flat[0, 0].double(), by_hand(flat_guide.double()), rtol=0, atol=1e-5)
    # where each half's object is: centred, in the middle of the half; flat, against the seam
    left = centred_guide[:, :4].sum(0)
    assert int(left.argmax()) in (1, 2) and int(flat_guide[:, :4].sum(0).argmax()) == 3


def test_centred_needs_masks():
    sched = DDIMScheduler(num_train_timesteps=10, prediction_type="sample")
    with pytest.raises(ValueError, match="centred terms need masks"):
        sample(lambda x, t, e: x, sched, torch.zeros(1, 1, 2), [1.0], torch.zeros(1, 1, 4, 4), 2, centred=True)
