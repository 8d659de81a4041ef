# %% [markdown]
# # 00 · The toy audio-visual world
#
# Generates the corpus of clips (MP4: H.264 + AAC, 32x32 at 8 fps, 16 kHz audio) with a
# ground-truth JSON per clip, and reports its statistics. All logic is in `s2i.world`.
# Run by `dvc repro` with the profile's values; opened directly, it runs at smoke size.

# %% tags=["parameters"]
seed: int = 0
run_dir: str = "build/nbval"  # dvc passes the profile's run_dir
n_clips: int = 60
p_match: float = 0.55

# %%
import matplotlib.pyplot as plt
import numpy as np

from s2i import resolve, write_json
from s2i.media import read_video
from s2i.toyworld import clips, world
from s2i.viz import plot_clip

world_dir = resolve(run_dir) / "world"
metrics_path = resolve(run_dir) / "metrics" / "world.json"

# %%
index = clips.generate_world(world_dir, n_clips=n_clips, seed=seed, p_match=p_match)
stats = clips.corpus_stats(world_dir)
write_json(metrics_path, stats)

# %% [markdown]
# ## Corpus statistics
# Class and background balance, split sizes, and the share of frames whose picture and sound
# disagree (`silent`: an object is visible but silent; `offscreen`: the object is heard but not
# seen; `ambient`: only the ambience). Naive frame/audio pairing is wrong for all of those.

# %%
# NBVAL_CHECK_OUTPUT
print("clips", stats["n_clips"], "frames", stats["n_frames"], "splits", dict(sorted(stats["splits"].items())))
print("mismatch_share >= 1/3:", stats["mismatch_share"] >= 1 / 3)

# %%
import pandas as pd  # noqa: E402  (papermill brings pandas)

display(pd.DataFrame({"clips": stats["class_counts"]}).T)
display(pd.DataFrame({"clips": stats["background_counts"]}).T)
display(pd.DataFrame({"share of frames": stats["frame_kind_share"]}).T.round(3))

# %% [markdown]
# ## Sample clips: frames (segment kind above each) and spectrogram with the source's gain envelope

# %%
fig, axes = plt.subplots(6, 1, figsize=(10, 9), gridspec_kw={"height_ratios": [1, 1.3] * 3})
for k, row in enumerate(index["clips"][:3]):
    v = read_video(world_dir / row["video"])
    truth = clips.load_truth(world_dir, row["clip_id"])
    plot_clip(axes[2 * k], axes[2 * k + 1], v.frames, v.audio[: int(truth["duration"] * truth["sr"])], v.sr, truth)
fig.tight_layout()
fig.savefig(resolve(run_dir) / "world" / "samples.png", dpi=80)

# %% [markdown]
# ## The catalogue: every class (columns) on every background (rows), one size each
#
# Colours are shared: every object takes one of the 8 palette colours at random, so the class
# is the shape (and the sound), never the colour. Here each row shifts the colours by three.

# %%
from s2i.viz import grid

stills = [
    world.render_still(world.Scene(b, [world.SceneObject(c, size=9, colour=(c + 3 * b) % len(world.PALETTE))]))
    for b in range(len(world.BACKGROUNDS))
    for c in range(len(world.CLASSES))
]
plt.figure(figsize=(8, 4))
plt.imshow(grid(np.stack(stills), len(world.CLASSES)))
plt.xticks([(i + 0.5) * 33 for i in range(8)], world.CLASSES, fontsize=8)
plt.yticks([(i + 0.5) * 33 for i in range(4)], world.BACKGROUNDS, fontsize=8)
plt.title("classes x backgrounds")
