"""The dashboard: `render.py serve ROOT`, a web page over a batch root (or one run folder)."""
