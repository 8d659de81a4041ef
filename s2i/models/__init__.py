"""The networks: the audio encoder, and the toy profile's image encoder, generator (with the one
sampler) and judge."""
