"""The method, one module per group of claims: frame selection (claim 2,
:mod:`~s2i.method.selection`), alignment (4-5, :mod:`~s2i.method.alignment`), generation (6-8,
17, :mod:`~s2i.method.generate`), mixing (13-14, :mod:`~s2i.method.mix`), editing (9-12, 15-16,
:mod:`~s2i.method.edit`) and thumbnails (18-21, :mod:`~s2i.method.thumbnails`)."""
