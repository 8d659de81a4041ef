# %% [markdown]
# # 01 · Frame selection by audio-visual correspondence (S100, claim 2)
#
# From each video, keep the frames whose picture and sound agree. Only the videos are used --
# never the ground truth: a first alignment round (the patent's InfoNCE on *all* frame/audio
# pairs of the training videos, noisy as they are) scores every frame by how much better its own
# sound's embedding explains its picture's than sounds in general do (the pointwise mutual
# information the InfoNCE critic estimates, `correspondence_scores`), and the top-k frames per
# clip above a threshold are kept.
# The ground truth of the toy world is used afterwards, only to measure the selection.

# %% tags=["parameters"]
seed: int = 0
run_dir: str = "build/nbval"
profile: str = "smoke"
model_dir: str = "build/nbval/models"
window_s: float = 0.5
k: int = 4
score_quantile: float = 0.3
epochs: int = 3
audio_width: int = 8
audio_depth: int = 2
batch: int = 128
lr: float = 0.002
temperature: float = 0.1

# %%
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from s2i import resolve, seed_everything, write_json
from s2i.backbones import load_backbones
from s2i.method.alignment import AlignCfg, train_alignment
from s2i.method.selection import (
    correspondence_scores,
    decode_clips,
    reference_sounds,
    select_frames,
    selection_metrics,
    world_clips,
)
from s2i.models.audio_encoder import AudioEncoderCfg, encode_mels, log_mel

seed_everything(seed)
out = resolve(run_dir)
sel_dir = out / "frame_selection"

# %%
clips, skipped = decode_clips(world_clips(out / "world"), window_s)
bb = load_backbones(profile, model_dir)
frames = np.concatenate([c.frames for c in clips])
z_img = bb.encode_images(frames)  # (N, D) frozen image embeddings
mels = log_mel(np.concatenate([c.windows for c in clips]))
owner = np.concatenate([[i] * len(c.frames) for i, c in enumerate(clips)])
is_train = np.array([clips[i].ref.split == "train" for i in owner])
print(len(clips), "clips,", len(frames), "frames,", len(skipped), "skipped")

# %% [markdown]
# ## Round 0: align on every frame of the training videos, then score every frame

# %%
enc_cfg = AudioEncoderCfg(embed_dim=bb.embed_dim, width=audio_width, depth=audio_depth)
scorer, hist = train_alignment(
    mels[is_train],
    z_img[is_train],
    enc_cfg,
    AlignCfg(loss="infonce_l2", temperature=temperature, epochs=epochs, batch=batch, lr=lr),
    seed,
)
z_aud = encode_mels(scorer, mels)
scores = correspondence_scores(z_aud, z_img, reference_sounds(z_aud, is_train, seed=seed), temperature)
threshold = float(np.quantile(scores[is_train], score_quantile))
selected = {c.ref.clip_id: select_frames(scores[owner == i], k, threshold) for i, c in enumerate(clips)}

# %%
m_train = selection_metrics([c for c in clips if c.ref.split == "train"], selected, k, seed)
m_test = selection_metrics([c for c in clips if c.ref.split == "test"], selected, k, seed)
metrics = dict(
    m_train,
    **{f"test_{key}": v for key, v in m_test.items()},
    threshold=threshold,
    k=k,
    n_clips=len(clips),
    n_skipped=len(skipped),
)
write_json(out / "metrics" / "frame_selection.json", metrics)
write_json(
    sel_dir / "selection.json",
    dict(
        window_s=window_s,
        k=k,
        threshold=threshold,
        skipped=skipped,
        clips={
            c.ref.clip_id: dict(
                split=c.ref.split,
                selected=selected[c.ref.clip_id].tolist(),
                scores=np.round(scores[owner == i], 4).tolist(),
            )
            for i, c in enumerate(clips)
        },
    ),
)

# %%
# NBVAL_CHECK_OUTPUT
print("clips", metrics["n_clips"], "skipped", metrics["n_skipped"], "k", k)
print("selected frames per clip <= k:", all(len(v) <= k for v in selected.values()))

# %%
display(pd.Series({key: v for key, v in metrics.items() if not isinstance(v, (list, dict))}).to_frame("value").round(3))

# %% [markdown]
# ## Score curves: per-frame score (line), frames whose picture matches the sound (green, ground
# truth, not used by the selection), selected frames (red dots), threshold (dashed)

# %%
fig, axes = plt.subplots(4, 1, figsize=(10, 8), sharex=True)
train_ids = [i for i, c in enumerate(clips) if c.ref.split == "train"][:4]
for ax, i in zip(axes, train_ids):
    c, s = clips[i], scores[owner == i]
    ax.plot(s, color="k")
    for t in np.flatnonzero(c.match):
        ax.axvspan(t - 0.5, t + 0.5, color="green", alpha=0.2, lw=0)
    sel = selected[c.ref.clip_id]
    ax.plot(sel, s[sel], "o", color="red")
    ax.axhline(threshold, ls="--", color="gray")
    ax.set_ylabel(c.ref.clip_id, fontsize=8)
axes[-1].set_xlabel("frame")
fig.tight_layout()
sel_dir.mkdir(parents=True, exist_ok=True)
fig.savefig(sel_dir / "score_curves.png", dpi=80)
