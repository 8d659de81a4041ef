# %% [markdown]
# # 03 · The embedding prior: a sound's embedding -> image embeddings it could be
#
# A sound does not say everything its picture shows (here: the object's colour and place), so the
# aligned Z^A lands near the *average* of its frames' embeddings, and the generator draws an
# average as a patchwork. The prior (:mod:`s2i.models.prior`, unCLIP's prior with a sound for the
# caption) is a small diffusion model over embeddings, trained on the alignment's own pairs --
# the training clips' selected frames' Z^V and the trained encoder's Z^A of their sounds, no
# labels -- that samples one plausible picture's embedding per draw. Held-out: the x0 loss on the
# validation split's pairs. What it buys in pictures is measured by the drawing stages (04-07),
# each beside the same drawing from Z^A itself.

# %% tags=["parameters"]
seed: int = 0
run_dir: str = "build/nbval"
width: int = 64
depth: int = 2
steps: int = 200
batch: int = 64
lr: float = 0.0003
p_uncond: float = 0.1
cond_noise: float = 1.0
guidance: float = 2.0
sample_steps: int = 20

# %%
import time

import pandas as pd

from s2i import resolve, seed_everything, write_json
from s2i.method.prior import PriorTrainCfg, prior_loss, train_prior
from s2i.method.selection import load_pairs, subset
from s2i.models.audio_encoder import AudioEncoder, encode_mels
from s2i.models.prior import PriorCfg

seed_everything(seed)
out = resolve(run_dir)
rows, z, m = load_pairs(out / "pairs")
encoder = AudioEncoder.load(out / "alignment" / "audio_encoder")
tr_rows, tr_z, tr_m = subset(rows, z, m, "train", "selected")
va_rows, va_z, va_m = subset(rows, z, m, "val", "selected")
tr_a, va_a = encode_mels(encoder, tr_m), encode_mels(encoder, va_m)
print("train pairs", len(tr_rows), "validation pairs", len(va_rows))

# %%
cfg = PriorTrainCfg(
    PriorCfg(
        width=width,
        depth=depth,
        p_uncond=p_uncond,
        cond_noise=cond_noise,
        guidance=guidance,
        sample_steps=sample_steps,
    ),
    steps=steps,
    batch=batch,
    lr=lr,
)
t0 = time.perf_counter()
prior, losses = train_prior(tr_a, tr_z, cfg, seed)
train_s = time.perf_counter() - t0
prior.save(out / "prior", extra=dict(n_pairs=len(tr_rows), steps=steps, batch=batch, lr=lr, seed=seed))

# %% [markdown]
# ## Held-out loss, beside two baselines: the condition dropped (the prior of all pictures), and
# ## the validation pairs' conditions shuffled (a sound, but another pair's)

# %%
import torch

perm = torch.randperm(len(va_a), generator=torch.Generator().manual_seed(seed))
metrics = dict(
    n_train_pairs=len(tr_rows),
    n_val_pairs=len(va_rows),
    train_loss=losses[-1][1],
    val_loss=prior_loss(prior, va_a, va_z, seed),
    val_loss_no_condition=prior_loss(prior, torch.zeros_like(va_a), va_z, seed),
    val_loss_shuffled_condition=prior_loss(prior, va_a[perm], va_z, seed),
    train_s=round(train_s, 1),
    steps=steps,
)
write_json(out / "metrics" / "prior.json", metrics)
pd.DataFrame(losses, columns=["step", "loss"]).to_csv(
    (out / "plots").mkdir(parents=True, exist_ok=True) or out / "plots" / "prior_curve.csv", index=False
)

# %%
# NBVAL_CHECK_OUTPUT
print("train pairs > 0", metrics["n_train_pairs"] > 0, "steps", metrics["steps"])  # the count follows selection

# %%
display(pd.Series(metrics).to_frame("value").round(4))
