"""The embedding prior (s2i.models.prior, s2i.method.prior): it samples what a sound leaves open
instead of averaging it, deterministically, and round-trips through its files."""

import numpy as np
import pytest
import torch

from s2i.method.prior import PriorTrainCfg, prior_loss, train_prior
from s2i.models.prior import EmbeddingPrior, PriorCfg

D = 16


def ambiguous_pairs(n: int = 2048, seed: int = 0):
    """4 'sounds'; each sound's picture is its own direction u_c plus one of two 'colours' +-v
    that the sound does not tell. The mean picture of a sound is u_c, the picture of none."""
    g = torch.Generator().manual_seed(seed)
    u = 3 * torch.randn(4, D, generator=g)
    a = 3 * torch.randn(4, D, generator=g)  # the sounds' embeddings
    v = 3 * torch.randn(D, generator=g)
    c = torch.randint(4, (n,), generator=g)
    k = torch.randint(2, (n,), generator=g) * 2 - 1
    z_a = a[c] + 0.1 * torch.randn(n, D, generator=g)
    z_v = u[c] + k[:, None] * v
    return z_a, z_v, a, u, v


@pytest.fixture(scope="module")
def trained():
    z_a, z_v, a, u, v = ambiguous_pairs()
    cfg = PriorTrainCfg(PriorCfg(width=128, depth=2, cond_noise=0.3, sample_steps=25), steps=800, batch=128, lr=1e-3)
    prior, losses = train_prior(z_a, z_v, cfg, seed=0)
    return prior, losses, (z_a, z_v, a, u, v)


def test_samples_one_mode_not_the_average(trained):
    prior, _, (_, _, a, u, v) = trained
    z = prior.sample(a, n_per=64, seed=1, guidance=1.0)  # (4 * 64, D)
    c = torch.arange(4).repeat_interleave(64)
    to_plus, to_minus = (z - (u[c] + v)).norm(dim=1), (z - (u[c] - v)).norm(dim=1)
    near_mode = torch.minimum(to_plus, to_minus)
    to_mean = (z - u[c]).norm(dim=1)
    assert near_mode.median() < 0.3 * v.norm()  # a picture's embedding ...
    assert to_mean.median() > 0.7 * v.norm()  # ... not the average of two
    plus = (to_plus < to_minus).float().view(4, 64).mean(1)
    assert ((plus > 0.2) & (plus < 0.8)).all(), plus  # both colours drawn for every sound


def test_the_condition_decides_the_sound(trained):
    prior, _, (_, _, a, u, v) = trained
    z = prior.sample(a, n_per=16, seed=2)
    d = torch.stack([torch.minimum((z - (uc + v)).norm(dim=1), (z - (uc - v)).norm(dim=1)) for uc in u], 1)
    assert (d.argmin(1) == torch.arange(4).repeat_interleave(16)).float().mean() > 0.95


def test_training_lowers_the_loss_and_the_condition_matters(trained):
    prior, losses, (z_a, z_v, *_) = trained
    untrained, _ = train_prior(z_a, z_v, PriorTrainCfg(prior.cfg, steps=1), seed=0)
    assert losses[-1][1] < 0.5 * prior_loss(untrained, z_a, z_v)
    held = ambiguous_pairs(256, seed=0)  # the same world: the same u, v, sounds
    own = prior_loss(prior, held[0], held[1])
    assert own < prior_loss(prior, torch.zeros_like(held[0]), held[1])
    assert own < prior_loss(prior, held[0].roll(1, 0), held[1])


def test_sampling_is_deterministic_and_seeded(trained):
    prior, _, (_, _, a, *_) = trained
    x1, x2 = prior.sample(a, 2, seed=5), prior.sample(a, 2, seed=5)
    assert torch.equal(x1, x2)
    assert not torch.allclose(x1, prior.sample(a, 2, seed=6))
    noise = torch.randn(8, D, generator=torch.Generator().manual_seed(5))
    assert torch.allclose(prior.sample(a, 2, noise=noise), x1)
    with pytest.raises(ValueError, match="noise of shape"):
        prior.sample(a, 2, noise=noise[:3])
    with pytest.raises(ValueError, match="steps"):
        prior.sample(a, steps=0)


def test_training_is_deterministic():
    z_a, z_v, *_ = ambiguous_pairs(256)
    cfg = PriorTrainCfg(PriorCfg(width=32, depth=1), steps=20, batch=32)
    p1, l1 = train_prior(z_a, z_v, cfg, seed=3)
    p2, l2 = train_prior(z_a, z_v, cfg, seed=3)
    assert l1 == l2
    for (k, t1), t2 in zip(p1.state_dict().items(), p2.state_dict().values()):
        assert torch.equal(t1, t2), k


def test_save_and_load_give_the_same_samples(trained, tmp_path):
    prior, _, (_, _, a, *_) = trained
    prior.save(tmp_path / "prior", extra=dict(n_pairs=2048))
    assert EmbeddingPrior.exists(tmp_path / "prior") and not EmbeddingPrior.exists(tmp_path)
    back = EmbeddingPrior.load(tmp_path / "prior")
    assert back.cfg == prior.cfg and (back.z_scale, back.a_scale) == (prior.z_scale, prior.a_scale)
    assert torch.equal(back.sample(a, 3, seed=0), prior.sample(a, 3, seed=0))


def test_bad_pairs_are_refused():
    with pytest.raises(ValueError, match="one shape"):
        train_prior(torch.zeros(8, 4), torch.zeros(8, 5), PriorTrainCfg())
    with pytest.raises(ValueError, match="at least 2"):
        train_prior(torch.zeros(1, 4), torch.zeros(1, 4), PriorTrainCfg())


def test_sound2image_draws_the_prior_samples(smoke_s2i):
    """The smoke run trains a prior; each image is drawn from its own sample, and without the
    prior Z^A itself is drawn, repeated."""
    assert smoke_s2i.prior is not None
    z = torch.randn(3, smoke_s2i.prior.cfg.dim)
    s = smoke_s2i.image_embeddings(z, n_per=2, seed=0)
    assert s.shape == (6, z.shape[1])
    assert torch.allclose(s, smoke_s2i.prior.sample(z, 2, seed=0), atol=1e-5)
    plain = smoke_s2i.without_prior()
    assert plain.prior is None and smoke_s2i.prior is not None
    assert torch.equal(plain.image_embeddings(z, n_per=2), z.repeat_interleave(2, 0))
    a = np.sin(np.arange(8000) / 7.0).astype(np.float32)
    imgs = smoke_s2i.generate(a, sr=16000, n=2, seed=0)
    zs = smoke_s2i.image_embeddings(smoke_s2i.embed_audio(a, 16000)[None], 2, seed=0)
    assert np.array_equal(imgs, smoke_s2i.backbones.generate(zs, n_per=1, seed=0))


def test_shared_noise_gives_equal_sounds_equal_samples(smoke_s2i):
    """Embeddings drawn together (a sound and its quiet copy, a video's frames) share one noise:
    equal sounds get equal samples, and the first row is the seed's sample."""
    z = torch.randn(2, smoke_s2i.prior.cfg.dim)
    zz = torch.cat([z, z[:1]])
    s = smoke_s2i.image_embeddings(zz, 1, seed=4, shared=True)
    assert torch.allclose(s[0], s[2], atol=1e-5) and not torch.allclose(s[0], s[1], atol=1e-2)
    g = torch.Generator().manual_seed(4)
    one = smoke_s2i.prior.sample(z[:1], 1, noise=torch.randn(1, z.shape[1], generator=g))
    assert torch.allclose(s[:1], one, atol=1e-5)  # batch sizes round differently
    with pytest.raises(ValueError, match="one sample per sound"):
        smoke_s2i.image_embeddings(zz, 2, shared=True)
    assert torch.equal(smoke_s2i.without_prior().image_embeddings(zz, 1, shared=True), zz)
