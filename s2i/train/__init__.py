"""Pretraining of the toy/smoke backbones: the SimCLR image encoder, the judge and the
embedding-conditioned generator (the ``pretrain`` stage)."""
