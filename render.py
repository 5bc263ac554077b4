"""Entry point: python render.py PRESET [key=value ...] [options]  |  python render.py batch PATH..."""
from anim.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
