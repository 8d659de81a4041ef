"""The toy audio-visual world: objects with a shape, a colour and a sound in a place with its
ambience (:mod:`~s2i.toyworld.world`), clips (:mod:`~s2i.toyworld.clips`), rendered stills for
pretraining, long "programmes" and held-out test sounds."""
