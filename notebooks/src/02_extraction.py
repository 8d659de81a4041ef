# %% [markdown]
# # 02 · Pair extraction (S200) and image embeddings
#
# Decodes the selected frames and the audio window around each from the video files (PyAV:
# first video and audio streams, audio resampled to 16 kHz), embeds the frames with the frozen
# image encoder and stores image embeddings and log-mels with an index (`s2i.method.save_pairs`).
# Also extracted: random frames of the same clips (the no-selection ablation) and, for the
# test clips, the ground-truth matched frames (measurement only). Bad clips are skipped and listed.

# %% tags=["parameters"]
seed: int = 0
run_dir: str = "build/nbval"
profile: str = "smoke"
model_dir: str = "build/nbval/models"
window_s: float = 0.5
k: int = 4

# %%
import numpy as np
import pandas as pd

from s2i import read_json, resolve, seed_everything, write_json
from s2i.backbones import load_backbones
from s2i.method.selection import decode_clips, save_pairs, world_clips
from s2i.models.audio_encoder import log_mel

seed_everything(seed)
out = resolve(run_dir)
sel = read_json(out / "frame_selection" / "selection.json")
refs = world_clips(out / "world")
rng = np.random.default_rng(seed)

# %%
wanted: dict[str, dict[int, list[str]]] = {}  # clip -> frame -> sources
for r in refs:
    s = sel["clips"].get(r.clip_id)
    if s is None:
        continue
    T = len(s["scores"])
    f = wanted.setdefault(r.clip_id, {})
    if r.split in ("train", "val"):
        for t in s["selected"]:
            f.setdefault(t, []).append("selected")
        for t in rng.choice(T, size=min(k, T), replace=False):
            f.setdefault(int(t), []).append("random")
    elif r.truth is not None:  # test: one ground-truth matched frame per matched segment (measurement only)
        truth = read_json(r.truth)
        for seg in truth["segments"]:
            if seg["type"] == "match":
                f.setdefault((seg["start"] + seg["end"] - 1) // 2, []).append("test_gt")
subset_idx = {cid: sorted(v) for cid, v in wanted.items()}
clips, skipped = decode_clips(refs, window_s, frames_subset=subset_idx)
print(len(clips), "clips decoded,", len(skipped), "skipped")

# %%
bb = load_backbones(profile, model_dir)
rows, frames, windows = [], [], []
for c in clips:
    truth = read_json(c.ref.truth) if c.ref.truth else None
    for t, img, w, time in zip(subset_idx[c.ref.clip_id], c.frames, c.windows, c.times):
        for source in wanted[c.ref.clip_id][t]:
            rows.append(
                dict(
                    clip_id=c.ref.clip_id,
                    frame=int(t),
                    time=float(time),
                    split=c.ref.split,
                    source=source,
                    sound_class=None if truth is None else truth["sound_class"],
                    match=None if truth is None else bool(truth["frames"][t]["match"]),
                )
            )
            frames.append(img)
            windows.append(w)
z_img = bb.encode_images(np.stack(frames))
mels = log_mel(np.stack(windows))
save_pairs(out / "pairs", rows, z_img, mels)
df = pd.DataFrame(rows)
metrics = dict(
    n_clips=len(clips) + len(skipped),
    n_decoded=len(clips),
    n_pairs=len(rows),
    n_skipped=len(skipped),
    skipped=skipped,
    pairs_by_source=df.groupby("source").size().to_dict(),
    embed_dim=int(z_img.shape[1]),
    mel_shape=list(mels.shape[1:]),
)
write_json(out / "metrics" / "extraction.json", metrics)

# %%
# NBVAL_CHECK_OUTPUT
src = metrics["pairs_by_source"]  # how many frames selection kept depends on the models: not compared
print("random", src.get("random"), "test_gt", src.get("test_gt"), "selected > 0", src.get("selected", 0) > 0)
print("skipped", metrics["n_skipped"], "embed_dim", metrics["embed_dim"], "mel", metrics["mel_shape"])

# %%
display(df.groupby(["split", "source"]).agg(pairs=("clip_id", "size"), match_share=("match", "mean")).round(3))

# %%
import matplotlib.pyplot as plt  # noqa: E402

fig, axes = plt.subplots(2, 6, figsize=(12, 4))
for j, i in enumerate(np.flatnonzero(df.source == "selected")[:6]):
    axes[0, j].imshow(frames[i])
    axes[0, j].set_title(f"{rows[i]['clip_id']} f{rows[i]['frame']}", fontsize=7)
    axes[1, j].imshow(mels[i, 0].numpy(), origin="lower", aspect="auto", cmap="magma")
for a in axes.flat:
    a.set_axis_off()
fig.suptitle("selected pairs: frame and the log-mel of its audio window")
