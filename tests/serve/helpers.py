"""Helpers for the dashboard tests: a free port, the server on a thread, a tiny batch root on disk."""
from __future__ import annotations

import contextlib
import socket
import threading
import time
from pathlib import Path

from anim.serve.cli import make_server


def free_port() -> int:
    """A TCP port nobody listens on right now (the OS picks it)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def serving(root: Path, token: str, host: str = "127.0.0.1"):
    """Run the dashboard over `root` on a thread; yields the port; stops the server after."""
    port = free_port()
    server = make_server(root, host, port, token)
    thread = threading.Thread(target=server.run, name="dashboard", daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started and thread.is_alive() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert server.started, "the dashboard did not start"
    try:
        yield port
    finally:
        server.should_exit = True
        thread.join(10)
