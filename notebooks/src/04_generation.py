# %% [markdown]
# # 04 · Audio -> image (claims 6, 7, 17)
#
# Held-out sounds rendered by the toy world with seeds never used in training (plus timbres
# outside the training range) go through the trained audio encoder into the image-embedding
# space, and the pretrained generator draws them. The judge says what was drawn. Upper bound:
# the same generator from the paired *image* embeddings of the held-out test clips, and from those
# of the pretrain stage's held-out stills (drawn as this stage draws). Baselines:
# chance, 1/8, and the same sounds drawn from Z^A itself, without the embedding prior
# (stage 03_prior), which is what the product draws from (each image its own sample of the prior).
#
# The judge reads shapes: colours are shared by all classes, and the colour-swap check
# (:mod:`s2i.eval.judge_check`: every shape in every palette colour and in six colours no class
# ever had, on held-out stills) gives its accuracy as the shape, beside how often it names the
# class whose colour the shape wears (the old world gave every class its own colour).

# %% tags=["parameters"]
seed: int = 0
run_dir: str = "build/nbval"
profile: str = "smoke"
model_dir: str = "build/nbval/models"
window_s: float = 0.5
sample_steps: int | None = None  # sampling.steps (None: the generator's own)
sample_guidance: float | None = None  # sampling.guidance (None: the generator's own)
n_per_class: int = 2
n_images: int = 2
candidates: int = 4  # the re-ranked figures: each image the best of this many drawings by the image encoder
n_recon: int = 32  # the pretrain stage's held-out stills drawn back from their image embeddings

# %%
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from s2i import resolve, seed_everything, write_json
from s2i.eval.judge_check import colour_swap_check
from s2i.eval.stills import HELDOUT_SEED_OFFSET, single_object
from s2i.eval.studies import confusion, eval_generation, recon_read
from s2i.method.generate import Sound2Image, draw_best_of
from s2i.method.selection import load_pairs, subset
from s2i.toyworld import world
from s2i.toyworld.heldout import sound_bank
from s2i.toyworld.stills import make_stills
from s2i.viz import grid, recon_grid, save_png

seed_everything(seed)
out = resolve(run_dir)
s2i = Sound2Image.from_run(
    run_dir, profile, model_dir, window_s, sample_steps=sample_steps, sample_guidance=sample_guidance
)

# %%
res = eval_generation(s2i, sound_bank(n_per_class, seed), n_images, seed)
res_novel = eval_generation(s2i, sound_bank(n_per_class, seed + 1, novel=True), n_images, seed)
plain = s2i.without_prior()  # the baseline: Z^A drawn as it is
res_plain = eval_generation(plain, sound_bank(n_per_class, seed), n_images, seed, z=res["z"])
res_plain_novel = eval_generation(
    plain, sound_bank(n_per_class, seed + 1, novel=True), n_images, seed, z=res_novel["z"]
)
rows, z, m = load_pairs(out / "pairs")
te_rows, te_z, _ = subset(rows, z, m, "test", "test_gt")
img_up = s2i.backbones.generate(te_z, n_per=1, seed=seed)
rep_up = s2i.backbones.judge.report(img_up)
te_cls = np.array([r["sound_class"] for r in te_rows])

# %% [markdown]
# ## Re-ranked by the image encoder
#
# The same sounds and image embeddings, each image now the best of `candidates` drawings. From a
# sound, each candidate is drawn from its own sample of the embedding prior and the one the
# frozen image encoder embeds nearest to the sound's own embedding kept
# (`Sound2Image.draw_from_sounds`; `s2i generate --candidates K`); from an image embedding, the
# one nearest to that embedding (`s2i.method.generate.draw_best_of`). The judge plays no part in
# the choice. Upper bound of the re-ranking: the share of images for which any of their
# candidates shows the heard class.

# %%
best = eval_generation(s2i, sound_bank(n_per_class, seed), n_images, seed, candidates=candidates, z=res["z"])
best_novel = eval_generation(
    s2i, sound_bank(n_per_class, seed + 1, novel=True), n_images, seed, candidates=candidates, z=res_novel["z"]
)
img_up_best, _ = draw_best_of(s2i.backbones, te_z, 1, candidates, seed)
rep_up_best = s2i.backbones.judge.report(img_up_best)
swap = colour_swap_check(s2i.backbones.judge)

# %% [markdown]
# ## From held-out image embeddings, drawn as every stage draws
#
# The pretrain stage's held-out stills (its seed, the first `n_recon`) drawn back from their image
# embeddings with this stage's sampler (`sampling.steps`, `sampling.guidance`): once, and each
# picture the best of `candidates` by the image encoder. The pretrain stage's own read
# (`backbones.json`, `recon_*`) draws the same stills at the generator's training settings.
# `generation_recon_grid.png`: the first 32 stills, each followed by its drawing.

# %%
held = make_stills(n_recon, seed + HELDOUT_SEED_OFFSET)
recon, recon_images = recon_read(s2i.backbones, held, seed)
recon_best, _ = recon_read(s2i.backbones, held, seed, candidates, prefix="recon_best_of")
(out / "figures").mkdir(parents=True, exist_ok=True)
save_png(out / "figures" / "generation_recon_grid.png", recon_grid(held.images, recon_images))
metrics = dict(
    class_acc_audio=res["class_acc"],
    class_present_audio=res["present_acc"],
    bg_acc_audio=res["bg_acc"],
    class_acc_audio_novel_timbre=res_novel["class_acc"],
    bg_acc_audio_novel_timbre=res_novel["bg_acc"],
    prior=s2i.prior is not None,
    class_acc_audio_no_prior=res_plain["class_acc"],
    class_acc_audio_novel_timbre_no_prior=res_plain_novel["class_acc"],
    class_acc_image=float((rep_up["top_class"] == te_cls).mean()),
    candidates=candidates,
    class_acc_audio_best_of=best["class_acc"],
    bg_acc_audio_best_of=best["bg_acc"],
    class_acc_audio_novel_timbre_best_of=best_novel["class_acc"],
    class_acc_image_best_of=float((rep_up_best["top_class"] == te_cls).mean()),
    class_acc_audio_any_candidate=best["class_acc_any_candidate"],
    class_chance=1 / len(world.CLASSES),
    judge_colour_swap_shape_acc=swap["shape_acc_palette"],
    judge_colour_swap_shape_acc_off_palette=swap["shape_acc_off_palette"],
    judge_colour_swap_old_colour_rate=swap["old_colour_rate"],
    judge_colour_swap_n=swap["n"],
    **{k: v for k, v in recon.items() if k != "recon_exact_set"},
    **{k: v for k, v in recon_best.items() if k in ("recon_best_of_class_acc", "recon_best_of_class_acc_ci95")},
    recon_guidance=s2i.backbones.guidance,
    n_recon=n_recon,
    n_recon_single=int(single_object(held).sum()),
    n_sounds=len(res["cls"]) // n_images,
    n_images_per_sound=n_images,
    n_image_pairs=len(te_cls),
)
write_json(out / "metrics" / "generation.json", metrics)

# %%
# NBVAL_CHECK_OUTPUT
print("sounds", metrics["n_sounds"], "images per sound", metrics["n_images_per_sound"])

# %%
display(pd.Series(metrics).to_frame("value").round(3))

# %% [markdown]
# ## Confusion: heard class (rows) vs the judge's top class in the generated image (columns)

# %%
cm = confusion(res["cls"], res["report"]["top_class"])
fig, ax = plt.subplots(figsize=(5, 4))
ax.imshow(cm, cmap="Blues", vmin=0, vmax=1)
ax.set_xticks(range(8), world.CLASSES, rotation=60, fontsize=7)
ax.set_yticks(range(8), world.CLASSES, fontsize=7)
for i in range(8):
    for j in range(8):
        if cm[i, j] > 0:
            ax.text(j, i, f"{cm[i, j]:.2f}", ha="center", va="center", fontsize=6)
ax.set_xlabel("judged")
ax.set_ylabel("heard")
fig.tight_layout()
(out / "figures").mkdir(parents=True, exist_ok=True)
fig.savefig(out / "figures" / "generation_confusion.png", dpi=100)

# %% [markdown]
# ## Sound -> images: one row per class (the rendered still of the heard scene, then generated images)

# %%
bank = sound_bank(n_per_class, seed)
rows_img = []
for c in range(8):
    i = [k for k, s in enumerate(bank) if s.cls == c][0]
    s = bank[i]
    ref = world.render_still(world.Scene(s.bg, [world.SceneObject(s.cls, gain=s.gain)]))
    rows_img += [ref] + list(res["images"][i * n_images : (i + 1) * n_images])
img = grid(np.stack(rows_img), 1 + n_images, scale=4)
save_png(out / "figures" / "generation_grid.png", img)
plt.figure(figsize=(3, 8))
plt.imshow(img)
plt.axis("off")
