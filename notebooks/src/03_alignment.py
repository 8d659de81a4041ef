# %% [markdown]
# # 03 · Aligning audio to the image-embedding space with InfoNCE (S300, claims 4-5)
#
# The audio encoder (log-mel -> ResNet -> projection) is trained on the selected pairs so that
# Z^A lands on the frozen Z^V. No labels and no text. Held-out validation split (best epoch
# kept), a checkpoint each epoch (a rerun after a kill resumes), test retrieval on the held-out
# test clips. The loss options are compared side by side, and the same training on random
# frames instead of selected ones measures what frame selection buys.

# %% tags=["parameters"]
seed: int = 0
run_dir: str = "build/nbval"
audio_width: int = 8
audio_depth: int = 2
loss: str = "infonce_l2+1*l2"
temperature: float = 0.1
normalize: bool = True
epochs: int = 3
batch: int = 128
lr: float = 0.002
compare_losses: str = "infonce_l2,infonce_cos,l2,infonce_l2+1*l2"
compare_epochs: int = 2

# %%
import numpy as np
import pandas as pd

from s2i import resolve, seed_everything, write_json
from s2i.method.alignment import AlignCfg, retrieval, train_alignment
from s2i.method.selection import load_pairs, subset
from s2i.models.audio_encoder import AudioEncoderCfg, encode_mels

seed_everything(seed)
out = resolve(run_dir)
adir = out / "alignment"
rows, z, m = load_pairs(out / "pairs")
tr = subset(rows, z, m, "train", "selected")
va = subset(rows, z, m, "val", "selected")
te = subset(rows, z, m, "test", "test_gt")
tr_rand = subset(rows, z, m, "train", "random")
te_cls = np.array([r["sound_class"] for r in te[0]])
enc_cfg = AudioEncoderCfg(embed_dim=int(z.shape[1]), width=audio_width, depth=audio_depth)
print("train", len(tr[0]), "val", len(va[0]), "test", len(te[0]))


def fit(train, loss_name, n_epochs, ckpt=None):
    cfg = AlignCfg(
        loss=loss_name,
        temperature=temperature if "cos" not in loss_name else 0.07,
        normalize=normalize,
        epochs=n_epochs,
        batch=batch,
        lr=lr,
    )
    model, hist = train_alignment(train[2], train[1], enc_cfg, cfg, seed, val=(va[2], va[1]), ckpt_dir=ckpt)
    return model, hist, retrieval(encode_mels(model, te[2]), te[1], te_cls)


# %% [markdown]
# ## The default loss, trained on the selected frames

# %%
model, hist, res = fit(tr, loss, epochs, ckpt=adir / "ckpt")
model.save(adir / "audio_encoder", extra=dict(loss=loss, temperature=temperature, window_s=None))
pd.DataFrame(hist).to_csv(
    (out / "plots").mkdir(parents=True, exist_ok=True) or out / "plots" / "alignment_curve.csv", index=False
)

# %% [markdown]
# ## Ablation: the same training on random frames (no selection), and the loss options

# %%
_, _, res_rand = fit(tr_rand, loss, epochs)
table = []
for name in compare_losses.split(","):
    _, _, r = fit(tr, name, compare_epochs)
    table.append(
        dict(loss=name, r1=r["r1"], r5=r["r5"], class_r1=r["class_r1"], mean_l2=r["mean_l2"], mean_cos=r["mean_cos"])
    )
metrics = dict(
    r1=res["r1"],
    r5=res["r5"],
    r10=res["r10"],
    n=res["n"],
    chance_r1=res["chance_r1"],
    class_r1=res["class_r1"],
    class_chance=res["class_chance"],
    median_rank=res["median_rank"],
    mean_l2=res["mean_l2"],
    mean_cos=res["mean_cos"],
    r1_no_selection=res_rand["r1"],
    class_r1_no_selection=res_rand["class_r1"],
    loss=loss,
    epochs=epochs,
    loss_table=table,
    compare_epochs=compare_epochs,
)
write_json(out / "metrics" / "alignment.json", metrics)

# %%
# NBVAL_CHECK_OUTPUT
print("test pairs", metrics["n"], "losses compared", [t["loss"] for t in table])

# %%
display(pd.Series({k: v for k, v in metrics.items() if not isinstance(v, (list, dict))}).to_frame("value"))
display(pd.DataFrame(table).round(3))

# %%
import matplotlib.pyplot as plt  # noqa: E402

h = pd.DataFrame(hist)
fig, ax = plt.subplots(1, 2, figsize=(10, 3))
ax[0].plot(h.epoch, h.train_loss, label="train")
ax[0].plot(h.epoch, h.val_loss, label="val")
ax[0].legend()
ax[0].set_title("InfoNCE loss")
ax[1].plot(h.epoch, h.val_r1)
ax[1].set_title("val R@1")
fig.tight_layout()
