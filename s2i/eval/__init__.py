"""Measurements of the toy profile by the judge: generation, volume, mixing and editing
studies, the thumbnails' evaluation, and the intervals of their figures (:mod:`s2i.eval.stats`)."""
