"""`render.py serve ROOT [--host 127.0.0.1] [--port 8765]`: the dashboard over a batch root or a run folder.

The server is optional: the batch never needs it. It reads ROOT and writes only ROOT/.control/ (its actions).
"""
from __future__ import annotations

import argparse
import secrets
import socket
from pathlib import Path

from anim.errors import InputError
from anim.serve.app import LOOPBACK_HOSTS, create_app

EXAMPLES = """examples:
  python render.py serve outputs/night                      # http://127.0.0.1:8765/ on this machine
  python render.py serve outputs/night --host 0.0.0.0       # from a phone on the same network (token printed)

the page shows every job (status, frame N of M, frames/s, ETA, latest frame; first/middle/last frames and the
video when done; the error and log tail when failed) and can requeue, cancel and pause/resume the queue by
writing ROOT/.control/ (read by the batch workers, also by a batch started later)
"""


def build_parser() -> argparse.ArgumentParser:
    """The serve subcommand's arguments."""
    parser = argparse.ArgumentParser(prog="render.py serve", epilog=EXAMPLES,
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     description="A live web page over a batch root (or one run folder).")
    parser.add_argument("root", type=Path, metavar="ROOT", help="a batch root (render.py batch --out) or a run folder")
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to bind (default 127.0.0.1; any other needs the printed token)")
    parser.add_argument("--port", type=int, default=8765, help="TCP port (default 8765)")
    return parser


def is_local(host: str) -> bool:
    """A loopback bind: reads need no token (actions still do)."""
    return host in LOOPBACK_HOSTS


def page_url(host: str, port: int, token: str) -> str:
    """The address to open; with the token when the bind is not the loopback (0.0.0.0 shown as this host)."""
    if is_local(host):
        return f"http://{host}:{port}/"
    shown = socket.gethostname() if host in ("0.0.0.0", "::", "") else host
    return f"http://{shown}:{port}/?token={token}"


def make_server(root: Path, host: str, port: int, token: str):
    """A uvicorn Server for the dashboard (tests run it on a thread and set `should_exit`)."""
    import uvicorn

    app = create_app(root, token, local=is_local(host))
    return uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=False))


def serve_main(argv: list[str]) -> int:
    """Check ROOT, make a token, print the address and serve until Ctrl-C."""
    args = build_parser().parse_args(argv)
    if not args.root.is_dir():
        raise InputError(f"serve: {args.root}: no such folder (give a batch root or a run folder)")
    if not 0 < args.port < 65536:
        raise InputError(f"serve: --port {args.port}: must be 1..65535")
    token = secrets.token_urlsafe(24)
    print(f"anim dashboard over {args.root.resolve()}: {page_url(args.host, args.port, token)}", flush=True)
    if not is_local(args.host):
        print("every request needs the token above (keep it to yourself); Ctrl-C stops the server", flush=True)
    make_server(args.root, args.host, args.port, token).run()
    return 0
