"""Reading and writing audio/video files with PyAV (FFmpeg inside the wheel).

All decoding goes through here, so the toy world and real videos (``full``
profile) share one code path: whatever resolution, frame rate, codec and audio
rate PyAV decodes comes out as RGB uint8 frames with timestamps and mono float32
audio resampled to the requested rate.

Public API
----------
- :func:`read_video` -- one file, first video stream + first audio stream, decoded in a
  single demux pass, as a :class:`Video`.
- :func:`read_audio` -- first audio stream of any file as mono float32 at ``sr``.
- :func:`read_audio_track` -- the same stream as it is heard (mono or stereo, its own rate),
  to write it again.
- :func:`iter_audio_windows` -- stream an arbitrarily long file as batches of fixed-length
  windows (constant memory); :func:`audio_window_starts` gives the same window grid without
  decoding.
- :func:`probe` -- container and per-stream facts (codec, fps, duration, rate, channels, size).
- :func:`read_videos_skipping` -- decode many files, listing the bad ones instead of failing.
- :func:`write_video` -- H.264 + AAC MP4.
- :func:`square_resize`, :func:`fit_resize` -- centre-crop to an aspect and resize.

Every failure to read a file raises :class:`MediaError` whose message starts with the
file path, then ``": "`` and the reason; no raw PyAV/FFmpeg exception escapes.

Conventions
-----------
- Streams are chosen explicitly: the first video stream (cover pictures excluded) and the
  first audio stream in the file's stream order; other streams are never decoded.
- Multi-channel audio is downmixed by averaging the channels (``(L + R) / 2`` for stereo),
  after resampling each channel to ``sr`` with libswresample.
- In :class:`Video`, ``times`` and ``audio`` share one clock whose zero is the earliest
  first timestamp of the two decoded streams: ``audio[k]`` plays at ``k / sr`` seconds and
  frame ``i`` at ``times[i]`` seconds. An audio track that starts later than the video is
  padded with leading zeros; gaps inside a stream are not filled (samples are concatenated).
- Display rotation (phone videos) is applied, as the ``ffmpeg`` command line does.

Layout
------
:mod:`s2i.media.common` (errors, opening and checking files, :func:`probe`),
:mod:`s2i.media.audio` (mono audio, :func:`read_audio`, windows, :func:`encode_audio`) and
:mod:`s2i.media.video` (:class:`Video`, :func:`read_video`, :func:`write_video`); everything
public is imported from here.
"""

from s2i.media.audio import audio_window_starts, encode_audio, iter_audio_windows, read_audio, read_audio_track
from s2i.media.common import SR, MediaError, NonFiniteAudio, probe
from s2i.media.video import (
    Video,
    aspect_crop,
    fit_resize,
    read_video,
    read_videos_skipping,
    square_resize,
    write_video,
)

__all__ = [
    "SR",
    "MediaError",
    "Video",
    "write_video",
    "read_video",
    "read_audio",
    "read_audio_track",
    "iter_audio_windows",
    "audio_window_starts",
    "probe",
    "read_videos_skipping",
    "square_resize",
    "fit_resize",
    "aspect_crop",
    "encode_audio",
    "NonFiniteAudio",
]
