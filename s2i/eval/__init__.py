"""Measurements of the toy profile by the judge: generation, volume, mixing and editing
studies (:mod:`s2i.eval.studies`), the video study (:mod:`s2i.eval.videos`), the thumbnails'
evaluation, and the intervals of their figures (:mod:`s2i.eval.stats`)."""
