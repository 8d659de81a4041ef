# %% [markdown]
# # Real videos · the `full` profile's training path (S100-S300 on a folder of videos)
#
# Not a dvc stage of the toy pipeline: the path a researcher takes on VGGSound or VEGAS with
# pretrained OpenCLIP and a GPU (README, "The full profile"). The stages are functions of
# `s2i.real.pipeline`, the same ones `python -m s2i.real STAGE` and `accelerate launch -m s2i.real
# STAGE` run; each resumes, so after a multi-GPU run this notebook only reads what is done.
#
# 1. **corpus**: every video under `real.video_dir` probed; unusable files listed with their reason.
# 2. **select**: frame selection on the 10-fps grid (`bootstrap`, `center`, `random` or
#    Sound2Scene's published `sound2scene_json`).
# 3. **extract**: the selected frames embedded by the frozen OpenCLIP, un-normalised, with their
#    audio windows, in shards.
# 4. **align**: the audio encoder trained with InfoNCE (Accelerate), tested by retrieval.
#
# The defaults run the `fullsmoke` profile: tiny random OpenCLIP and Stable unCLIP saved in their
# real formats and generated real-format videos (set `videos` to a folder of your own). Random
# models make the numbers meaningless; the point is that every stage runs on real files.

# %% tags=["parameters"]
seed: int = 0
profile: str = "fullsmoke"
out_dir: str = "build/nbval/fullsmoke"
videos: str = ""
method: str = "bootstrap"

# %%
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from s2i import read_json, resolve, seed_everything
from s2i.paths import compose_profile
from s2i.real.pipeline import prepare_fullsmoke, run_align, run_corpus, run_evaluate, run_extract, run_select

seed_everything(seed)
p = compose_profile(profile)
p["base"]["seed"] = seed
p["real"].update(out_dir=out_dir)
p["real"]["selection"]["method"] = method
if p["real"].get("tiny"):
    p = prepare_fullsmoke(p, videos or None)
elif videos:
    p["real"]["video_dir"] = videos
out = resolve(out_dir)

# %% [markdown]
# ## Corpus: what is usable, what is not and why

# %%
corpus = run_corpus(p)
display(pd.DataFrame([c.__dict__ for c in corpus.clips]).drop(columns=["path"]).round(3))
display(pd.DataFrame(corpus.skipped))

# %% [markdown]
# ## Frame selection: frames kept per clip, scores, agreement with the baselines
#
# Agreement: the share of selected frames within half a second of one `center` or `random`
# pick of the same clip.

# %%
stats = run_select(p)
display(pd.Series({k: v for k, v in stats.items() if not isinstance(v, (list, dict))}).to_frame("value"))
display(pd.DataFrame({"agreement": stats["agreement"]}).round(3))
sel = read_json(out / "selection" / "selection.json")
if sel["scores"]:
    fig, ax = plt.subplots(figsize=(6, 2.5))
    ax.hist(np.concatenate([np.array(s) for s in sel["scores"].values()]), bins=30, color="gray")
    ax.axvline(stats["threshold"], color="red", ls="--", label="threshold")
    ax.set_xlabel("correspondence score (nats)")
    ax.legend()

# %% [markdown]
# ## Extraction, alignment and the field's evaluation protocol
#
# R@k of images generated from test sounds, judged by an independent CLIP, beside a random other
# test frame (baseline) and images generated from the true frames' embeddings (upper bound); the
# volume response per gain; test frames edited with other clips' sounds (kept / reflected).

# %%
index = run_extract(p)
metrics = run_align(p)
hist = pd.DataFrame(read_json(out / "alignment" / "history.json")).drop(columns=["losses"])
display(hist.round(4))
shown = ("n", "r1", "r5", "r10", "chance_r1", "class_r1", "class_chance")
display(pd.Series({k: metrics[k] for k in shown if k in metrics}).to_frame("test").round(3))
evaluation = run_evaluate(p)
rows = ("sound", "baseline_random_frame", "upper_bound_true_embedding")
display(pd.DataFrame({k: evaluation[k] for k in rows}).T.round(3))
print("FID / IS:", evaluation["fid_is"])
display(pd.DataFrame(evaluation["volume"]).set_index("gain_db").round(4))
edits = ("sound", "baseline_other_sound", "upper_bound_true_embedding")
display(pd.DataFrame({k: evaluation["editing"][k] for k in edits}).T)
plt.figure(figsize=(8, 3))
plt.imshow(plt.imread(out / "figures" / "evaluation_grid.png"))
plt.axis("off")
plt.title("from the sound / from the true frame's embedding / the true frame", fontsize=8)

# %%
# NBVAL_CHECK_OUTPUT
reasons = sorted({s["reason"].split(":")[0] for s in corpus.skipped})
print("usable", len(corpus.clips), "skipped", len(corpus.skipped), reasons)
k_ok = max(stats["frames_per_clip"]) <= p["real"]["selection"]["k"]
print("method", stats["method"], "| every clip selected at most k frames:", k_ok)
ordered = metrics["r10"] >= metrics["r5"] >= metrics["r1"]
print("pairs written:", index["n_pairs"] > 0, "| test pairs:", metrics["n"] > 1, "| R@10 >= R@5 >= R@1:", ordered)
