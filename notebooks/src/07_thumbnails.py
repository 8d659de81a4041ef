# %% [markdown]
# # 07 · Thumbnails of a long sound (claims 18-21, fig. 13-15)
#
# A long sound is cut into windows of T seconds overlapping by N seconds; the trained audio
# encoder embeds each window; k-means groups the embeddings (k chosen by silhouette); one
# representative embedding per cluster goes through the pretrained generator, which draws one
# thumbnail per cluster. The thumbnails are output in order of first appearance (contact sheet,
# slideshow), and the final thumbnail comes from the source heard longest, with the clusters
# that hold the same source counted together: the encoder hears the place too, so one source
# heard in two places is two clusters. An average-linkage tree of the clusters' mean *object
# sounds* (a window's central encoder window minus the same audio turned down 20 dB: the object
# kept, the place cancelled; up to 512 windows sampled; cosine distance) groups them, the group
# with the most windows wins, and the cluster at its centre gives the final thumbnail
# (`s2i.method.thumbnails.sound_groups`, `final_cluster`).
# `largest_pick_correct` gives the plain rule (the largest cluster, whatever it holds) beside it.
#
# Measured on toy *programmes*: minutes of sound assembled from segments of known classes over
# random backgrounds (sound seeds >= 2**40, never a training seed), so the truth is known:
# **cluster purity** (each window's true class is its cluster's majority class), **class
# coverage** (each class heard >= 10 % of the time has a thumbnail the judge says shows it) and
# **final pick** (the final thumbnail shows the class heard longest). Two diagnostics leave the
# generator out: each class is the majority of some cluster, and the final cluster's majority
# is the longest class. Both choices of representative are compared: the member nearest the
# centroid (default) and the centroid itself.

# %% tags=["parameters"]
seed: int = 0
run_dir: str = "build/nbval"
profile: str = "smoke"
model_dir: str = "build/nbval/models"
window_s: float = 0.5
sample_steps: int | None = None  # sampling.steps (None: the generator's own)
sample_guidance: float | None = None  # sampling.guidance (None: the generator's own)
thumb_window_s: float = 2.0
thumb_overlap_s: float = 1.0
k_max: int = 8
min_silhouette: float = 0.25
min_spread: float = 0.05
n_programmes: int = 2
programme_minutes_min: float = 1.0  # programme lengths are evenly spaced from min to max
programme_minutes_max: float = 1.0
candidates: int = 3  # each thumbnail the best of this many drawings (thumbnails.candidates)

# %%
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from s2i import resolve, seed_everything, write_json
from s2i.eval.thumbnails import evaluate_programmes, evaluate_thumbnails, programme_durations
from s2i.method.generate import Sound2Image
from s2i.method.thumbnails import make_thumbnails
from s2i.toyworld import world
from s2i.toyworld.programmes import make_programme, write_programme
from s2i.viz import save_png

seed_everything(seed)
out = resolve(run_dir)
tdir = out / "thumbnails"
s2i = Sound2Image.from_run(
    run_dir, profile, model_dir, window_s, sample_steps=sample_steps, sample_guidance=sample_guidance
)
programme_seeds = [1000 * seed + i for i in range(n_programmes)]
durations = programme_durations(n_programmes, programme_minutes_min, programme_minutes_max)
thumb_kw = dict(
    window_s=thumb_window_s,
    overlap_s=thumb_overlap_s,
    k_max=k_max,
    seed=seed,
    min_silhouette=min_silhouette,
    min_spread=min_spread,
    candidates=candidates,
)

# %% [markdown]
# ## All programmes: metrics, for both choices of representative

# %%
rows, summary = evaluate_programmes(
    s2i, programme_seeds, durations, representatives=("nearest", "centroid"), **thumb_kw
)
targets = dict(cluster_purity=0.9, class_coverage=0.9, final_pick_correct=0.9)
metrics = dict(
    **summary["nearest"],
    centroid=summary["centroid"],
    targets=targets,
    n_programmes=n_programmes,
    n_final_pick_correct=int(sum(r["final_pick_correct"] for r in rows if r["representative"] == "nearest")),
    programme_minutes=[programme_minutes_min, programme_minutes_max],
    total_minutes=round(float(durations.sum() / 60), 2),
    window_s=thumb_window_s,
    overlap_s=thumb_overlap_s,
    mean_k=float(np.mean([r["k"] for r in rows if r["representative"] == "nearest"])),
    mean_n_classes=float(np.mean([r["n_classes"] for r in rows if r["representative"] == "nearest"])),
)
write_json(out / "metrics" / "thumbnails.json", metrics)
write_json(tdir / "programmes.json", rows)

# %% [markdown]
# ## One programme end to end through a file (streamed), with its outputs

# %%
prog = make_programme(programme_seeds[0], float(durations[0]))
path = write_programme(prog, tdir / "programme_0.flac")
demo = make_thumbnails(s2i, path, out_dir=tdir / "programme_0", **thumb_kw)
demo_m = evaluate_thumbnails(demo, prog, s2i.backbones.judge)

# %%
# NBVAL_CHECK_OUTPUT
nearest = [r for r in rows if r["representative"] == "nearest"]
print(
    "programmes",
    len(nearest),
    "windows",
    [r["n_windows"] for r in nearest],
    "classes heard",
    [r["classes"] for r in nearest],
)
print("demo file windows", len(demo.starts), "segments", len(prog.segments))

# %%
table = pd.DataFrame({rep: {k: v for k, v in s.items()} for rep, s in summary.items()})
table["target"] = pd.Series(targets)
display(table.round(3))
display(pd.DataFrame(rows).drop(columns=["cluster_majority"]).round(3))

# %% [markdown]
# ## The demo programme's contact sheet (order of first appearance; the final one framed in gold)

# %%
sheet = plt.imread(tdir / "programme_0" / "contact_sheet.png")
(out / "figures").mkdir(parents=True, exist_ok=True)
save_png(out / "figures" / "thumbnails_contact_sheet.png", (sheet[..., :3] * 255).astype(np.uint8))
plt.figure(figsize=(min(2.2 * demo.k, 14), 2.6))
plt.imshow(sheet)
plt.axis("off")

# %% [markdown]
# ## Timeline: the truth (heard class per segment) against the clusters (per window)

# %%
fig, ax = plt.subplots(figsize=(12, 2.6))
for r in prog.timeline:
    colour = plt.get_cmap("tab10")(r["cls"]) if r["cls"] is not None else (0.8, 0.8, 0.8)
    ax.broken_barh([(r["start"], r["end"] - r["start"])], (1.1, 0.8), facecolors=colour, edgecolor="k", lw=0.3)
    ax.text((r["start"] + r["end"]) / 2, 1.5, r["name"] or "-", ha="center", va="center", fontsize=7)
judged = s2i.backbones.judge.report(demo.images)["top_class"]
cmap = plt.get_cmap("tab10")
for c in demo.clusters:
    for a, b in c["ranges"]:
        ax.broken_barh([(a, b - a)], (0.1, 0.8), facecolors=cmap(c["id"] % 10), edgecolor="k", lw=0.3)
    a, b = c["ranges"][0]
    ax.text((a + b) / 2, 0.5, f"#{c['id']}:{world.CLASSES[judged[c['id']]]}", ha="center", va="center", fontsize=7)
ax.set_yticks([0.5, 1.5], ["clusters\n(judged thumbnail)", "truth"])
ax.set_xlabel("s")
ax.set_xlim(0, prog.duration)
ax.set_title(
    f"purity {demo_m['cluster_purity']:.2f}, k={demo.k} for {demo_m['n_classes']} classes; final = #{demo.final}",
    fontsize=9,
)
fig.tight_layout()
fig.savefig(out / "figures" / "thumbnails_timeline.png", dpi=100)
