"""Media in and out: images and frame sources, PNG + A1111 metadata, video via imageio-ffmpeg's binary,
the streaming encoder, atomic file writes. Imports no model code."""
