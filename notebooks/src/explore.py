# %% [markdown]
# # Explore · sound -> image, interactively
#
# Not a pipeline stage: a place to play with the trained models of a profile. Choose a sound
# of the toy world's catalogue (class x background) or upload a file, make it louder or softer,
# mix in a second sound at a relative level, optionally give an image to edit (a toy still or
# an upload), pick seed and guidance -- and see what the generator draws, what the judge sees
# in it, the sound's spectrogram, and hear it.
#
# The logic is `s2i.explore`: `explore_once(...)` is a pure function with every knob a
# defaulted keyword (called once statically below); `Explorer` wraps it in ipywidgets and keeps
# its state readable (`ex.result`: images, settings, the judge's report). Sliders regenerate
# once on release (`continuous_update=False`); untick *regenerate on change* to use only the
# **Generate** button. Point `run_dir` / `profile` / `model_dir` at the toy run
# (`results`, `toy`, `models/toy`) for the real models; the defaults are the smoke run that
# nbval builds.

# %% tags=["parameters"]
seed: int = 0
run_dir: str = "build/nbval"
profile: str = "smoke"
model_dir: str = "build/nbval/models"
window_s: float = 0.5
sample_steps: int | None = None  # sampling.steps (None: the generator's own)
sample_guidance: float | None = None  # sampling.guidance (None: the generator's own)
sound_class: str = "bell"
background: str = "meadow"
volume_db: int = 0
guidance: float | None = None  # one sound's drawing; None: sample_guidance, else the generator's own
n_images: int = 2

# %%
import numpy as np

from s2i import seed_everything
from s2i.app.explore import explore_once
from s2i.app.widget import Explorer, plot_result
from s2i.method.generate import Sound2Image

seed_everything(seed)
s2i = Sound2Image.from_run(
    run_dir, profile, model_dir, window_s, sample_steps=sample_steps, sample_guidance=sample_guidance
)

# %% [markdown]
# ## One call, statically
#
# The same function the widget runs: the catalogue's sound at 0 dB -> images, judged.

# %%
res = explore_once(s2i, sound_class, background, volume_db, seed=seed, guidance=guidance, n=n_images)
fig = plot_result(res)
print("\n".join(res["summary"]))

# %% [markdown]
# ## The explorer
#
# Change any control; the status line says what runs ("embedding…", "generating…") and when it
# is done. The audio player plays the sound at the chosen volume.

# %%
ex = Explorer(s2i, sound_class, background, volume_db, seed=seed, guidance=guidance, n=n_images)
ex

# %% [markdown]
# Controls can be driven from code too (this is how the tests drive it): louder by 6 dB, then
# the Generate button.

# %%
before = ex.result
ex.volume.value = volume_db + 6
ex.generate_button.click()
after = ex.result
print(ex.status.value.split(" · ")[1:], "|", "\n".join(after["summary"]))

# %%
# NBVAL_CHECK_OUTPUT
print("static call:", res["images"].shape, res["images"].dtype, "method", res["method"])
print("explorer starts from the static call:", np.array_equal(before["images"], res["images"]))
print("settings after the click:", {k: after["settings"][k] for k in ("sound", "background", "volume_db", "method")})
print("louder changed the images:", not np.array_equal(after["images"], before["images"]))
print("errors:", ex.error, "| runs:", ex.n_runs)
