"""Dashboard security: the token on non-local binds, POST-only actions, files only from under ROOT."""
from __future__ import annotations

import http.client
import json

import numpy as np
import pytest
from starlette.testclient import TestClient  # noqa: I001 - starlette's own client (httpx under it)

from anim.batch import control
from anim.media.png import png_bytes
from anim.serve.app import create_app, safe_file
from tests.serve.helpers import serving

TOKEN = "s3cret-token"
SECRET = b"SECRET-BYTES-OUTSIDE-ROOT"


@pytest.fixture
def root(tmp_path):
    """A batch root with one job and its frame; beside it (outside ROOT) a secret file and folder."""
    root = tmp_path / "root"
    (root / "job" / "frames").mkdir(parents=True)
    (root / "job" / "frames" / "000000.png").write_bytes(png_bytes(np.zeros((4, 4, 3), np.uint8), "p", {}))
    (root / "job" / "log.txt").write_text("log")
    (root / "batch.json").write_text(json.dumps([{"name": "job", "status": "failed", "error": "x"}]))
    (tmp_path / "secret.png").write_bytes(SECRET)
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "000000.png").write_bytes(SECRET)
    (root / "escape.png").symlink_to(tmp_path / "secret.png")
    (root / "job" / "linked").symlink_to(tmp_path / "outside")
    return root


@pytest.fixture
def local(root):
    return TestClient(create_app(root, TOKEN, local=True), base_url="http://127.0.0.1:8765")


@pytest.fixture
def remote(root):
    return TestClient(create_app(root, TOKEN, local=False), base_url="http://192.168.1.20:8765")


def test_non_local_bind_needs_the_token_for_every_request(remote):
    for path in ("/", "/api/state", "/files/job/frames/000000.png", "/files/nope.png"):
        assert remote.get(path).status_code == 401
        assert remote.get(path, params={"token": "wrong"}).status_code == 401
    assert remote.get("/", params={"token": TOKEN}).status_code == 200
    assert remote.get("/api/state", headers={"X-Anim-Token": TOKEN}).json()["jobs"][0]["name"] == "job"
    assert remote.get("/files/job/frames/000000.png", params={"token": TOKEN}).content.startswith(b"\x89PNG")
    assert remote.post("/api/queue/pause").status_code == 401
    remote.cookies.set("token", TOKEN)
    assert remote.post("/api/queue/pause").status_code == 401  # a cookie is no token (no CSRF)


def test_local_reads_are_free_but_actions_need_the_token_and_post(local, root):
    page = local.get("/")
    assert page.status_code == 200 and json.dumps(TOKEN) in page.text  # the page embeds it for its buttons
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
    assert local.get("/api/state").status_code == 200
    assert local.post("/api/queue/pause").status_code == 401
    assert local.post("/api/jobs/job/requeue", headers={"X-Anim-Token": "wrong"}).status_code == 401
    assert not control.paused(root) and not control.requeue_requested(root, "job")
    assert local.get("/api/queue/pause", params={"token": TOKEN}).status_code == 405
    assert local.post("/api/queue/pause", headers={"X-Anim-Token": TOKEN}).json()["paused"] is True
    assert control.paused(root)
    assert local.post("/api/jobs/job/requeue", headers={"X-Anim-Token": TOKEN}).status_code == 200
    assert control.requeue_requested(root, "job")
    assert local.post("/api/jobs/nobody/cancel", headers={"X-Anim-Token": TOKEN}).status_code == 404
    assert local.post("/api/jobs/job/delete", headers={"X-Anim-Token": TOKEN}).status_code == 404


def test_local_bind_refuses_a_foreign_host_header(root):
    """DNS rebinding: a page of evil.example resolving to 127.0.0.1 must not read the token-bearing page."""
    client = TestClient(create_app(root, TOKEN, local=True), base_url="http://evil.example:8765")
    assert client.get("/").status_code == 400


@pytest.mark.parametrize("path", [
    "/files/%2e%2e/secret.png", "/files/job/%2e%2e/%2e%2e/secret.png", "/files/..%2fsecret.png",
    "/files/job%2fframes%2f000000.png", "/files/escape.png", "/files/job/linked/000000.png",
    "/files/.control/pause", "/files/job/log.txt", "/files/batch.json", "/files/job/frames/%00.png",
    "/files/job//frames/000000.png", "/files/job/frames/..%5c..%5csecret.png",
])
def test_files_outside_root_or_not_media_are_refused(local, path):
    response = local.get(path)
    assert response.status_code in (403, 404) and SECRET not in response.content


def test_safe_file_accepts_only_real_paths_under_root(root):
    real = root.resolve()
    assert safe_file(real, "job/frames/000000.png", b"/files/job/frames/000000.png") == \
        real / "job" / "frames" / "000000.png"
    for rel in ("../secret.png", "/etc/passwd.png", "escape.png", "job/linked/000000.png", "job/./frames/000000.png"):
        assert safe_file(real, rel, rel.encode()) is None, rel


def raw_get(port: int, path: str, headers: dict | None = None) -> tuple[int, bytes]:
    """GET `path` sent byte for byte (no client-side normalising of `..`) over a real socket."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.putrequest("GET", path, skip_host=True)
        connection.putheader("Host", f"127.0.0.1:{port}")
        for key, value in (headers or {}).items():
            connection.putheader(key, value)
        connection.endheaders()
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def test_traversal_over_a_real_socket_is_refused(root):
    with serving(root, TOKEN) as port:
        assert raw_get(port, "/files/job/frames/000000.png")[0] == 200
        for path in ("/files/../secret.png", "/files/job/../../secret.png", "/files/%2e%2e/secret.png",
                     "/files/job/frames/../../../secret.png", "/files/escape.png", "/files/job/linked/000000.png"):
            status, body = raw_get(port, path)
            assert status in (403, 404) and SECRET not in body, path


def test_non_local_bind_over_a_real_socket_needs_the_token(root):
    with serving(root, TOKEN, host="0.0.0.0") as port:
        assert raw_get(port, "/")[0] == 401
        assert raw_get(port, "/api/state")[0] == 401
        assert raw_get(port, f"/api/state?token={TOKEN}")[0] == 200
        assert raw_get(port, "/files/job/frames/000000.png", {"X-Anim-Token": TOKEN})[0] == 200


def test_serve_command_checks_root_and_prints_the_token_only_off_the_loopback(tmp_path, capsys):
    from anim.cli import main
    from anim.serve.cli import page_url

    assert main(["serve", str(tmp_path / "nope")]) == 2
    assert "nope: no such folder" in capsys.readouterr().err
    assert page_url("127.0.0.1", 8765, "tok") == "http://127.0.0.1:8765/"
    assert page_url("192.168.1.20", 9000, "tok") == "http://192.168.1.20:9000/?token=tok"
