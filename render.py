"""Entry point: python render.py PRESET [key=value ...] [options]."""
from anim.cli import main

raise SystemExit(main())
