"""Measurements of the toy profile by the judge: generation, volume, mixing and editing
studies, and the thumbnails' evaluation."""
