"""The real-video path: corpus scan, frame sampling, sharded extraction, distributed alignment."""
