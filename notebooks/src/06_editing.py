# %% [markdown]
# # 06 · Editing an image or a video with a sound (claims 9-12, 15-16)
#
# The heard object drawn into the input and kept where it differs from the same sound turned down
# (`s2i.method.edit`): the input is noised part-way (SDEdit) and drawn twice from the same noise
# inside a `region` (default: the centre, 3/4 of each side, which holds the largest object a loud
# sound draws; outside it every step's prediction is the input itself, blended diffusion): once
# under the sound's embedding, once under the same recording turned down by `ambience_db` (its
# sample of the embedding prior from other prior noise), at which level the object is no longer
# drawn. Both drawings paint the region as the place where the sound was recorded; only the first
# draws the object. The pixels where they differ are the object, and the edit is the first
# drawing there and the input everywhere else: the object at the size its loudness implies, the
# input's scene kept around it. Each edit is the best of `candidates`: the one whose change from
# the input, as the image encoder sees it, points most nearly along the sound's embedding minus
# the turned-down sound's (a directional similarity). Test sounds are held out and
# recorded at a *different* background than the input image, so keeping the background is a
# real test; `edit_scene_kept` reads it pixel by pixel around the object, where the judge's
# background read, which takes the whole picture, can miss a patch of another place.

# %% tags=["parameters"]
seed: int = 0
run_dir: str = "build/nbval"
profile: str = "smoke"
model_dir: str = "build/nbval/models"
window_s: float = 0.5
sample_steps: int | None = None  # sampling.steps (None: the generator's own)
sample_guidance: float | None = None  # sampling.guidance (None: the generator's own)
n_edits: int = 4
edit_gains_db: str = "-12,-6,0,6"
n_videos: int = 2
strength: float = 0.9
w_image: float = 0.0
w_sound: float = 2.0
ambience_db: float = -20.0
region: str = "centre"
candidates: int = 4  # each edit the best of K by its change's direction
video_candidates: int = 4  # each video the best of K whole edits (video_score)
video_region: float = 0.875  # the videos' centred rectangle, a share of each side

# %%
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from s2i import resolve, seed_everything, write_json
from s2i.eval.stats import bootstrap_ci
from s2i.eval.studies import edit_study
from s2i.eval.videos import video_study
from s2i.method.generate import Sound2Image
from s2i.viz import grid, save_png

seed_everything(seed)
out = resolve(run_dir)
edir = out / "editing"
edir.mkdir(parents=True, exist_ok=True)
s2i = Sound2Image.from_run(
    run_dir, profile, model_dir, window_s, sample_steps=sample_steps, sample_guidance=sample_guidance
)
G = [float(g) for g in edit_gains_db.split(",")]
kw = dict(strength=strength, w_image=w_image, w_sound=w_sound, ambience_db=ambience_db, region=region)

# %%
ed = edit_study(s2i, n_edits, seed, G, candidates=candidates, **kw)
vid = video_study(s2i, n_videos, seed, edir, **dict(kw, region=video_region, candidates=video_candidates))
metrics = dict(
    edit_object_added=ed["edit_object_added"],  # the heard class and no class the input lacked
    edit_object_added_ci95=bootstrap_ci(ed["added_per_edit"], seed=seed),  # over the edits
    edit_heard_class_present=ed["edit_heard_class_present"],  # among any: an upper bound
    edit_real_object_added=ed["edit_real_object_added"],  # a perfect edit, as the judge reads it
    edit_background_kept=ed["edit_background_kept"],
    edit_scene_kept=ed["edit_scene_kept"],  # the input's pixels around the object, kept
    edit_input_object_kept=ed["edit_input_object_kept"],  # the input's own object still there
    edit_volume_spearman=ed["edit_volume_spearman"],
    video_size_envelope_corr=vid["video_size_envelope_corr"],
    video_size_envelope_corr_ci95=bootstrap_ci(vid["corr_per_video"], seed=seed),  # over the videos
    video_object_present=vid["video_object_present"],
    video_object_alone=vid["video_object_alone"],
    video_bg_kept=vid["video_bg_kept"],
    video_scene_kept=vid["video_scene_kept"],  # the input's pixels around the object, whole frame
    video_probes=vid["probes"],
    n_edits=n_edits,
    n_videos=n_videos,
    candidates=candidates,
    video_candidates=video_candidates,
    video_region=video_region,
    **kw,
)
write_json(out / "metrics" / "editing.json", metrics)

# %%
# NBVAL_CHECK_OUTPUT
print("edits", n_edits, "videos", n_videos, "output streams", sorted({(p["video"], p["audio"]) for p in vid["probes"]}))

# %%
display(pd.Series({k: v for k, v in metrics.items() if not isinstance(v, list)}).to_frame("value"))

# %% [markdown]
# ## Edits: input, then the edit at each sound gain (rows: edits)

# %%
img = grid(np.concatenate(ed["examples"]), 1 + len(G), scale=4)
save_png(out / "figures" / "edit_grid.png", img)
plt.figure(figsize=(5, 8))
plt.imshow(img)
plt.axis("off")

# %% [markdown]
# ## Edited videos: every 4th frame of the first four (the sound's gain ramps up in the first and
# third, swells in the second and fourth)

# %%
img = grid(np.concatenate([f[::4] for f in vid["frames"][:4]]), 8, scale=3)
save_png(out / "figures" / "video_frames.png", img)
plt.figure(figsize=(10, 3))
plt.imshow(img)
plt.axis("off")
