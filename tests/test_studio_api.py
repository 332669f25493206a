"""The studio's REST API in-process (FastAPI's TestClient, the real worker thread and store)."""

from __future__ import annotations

import functools
import http.server
import io
import json
import random
import re
import threading
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from benchmarks.studio_load import LIGHT_PARAMS
from svdlab.cli import app as cli
from svdlab.errors import SvdlabError
from svdlab.models import load_model
from svdlab.params import GenerationParams
from svdlab.studio.app import Studio, create_app
from svdlab.studio.exposure import check_exposure
from tests.conftest import make_image

LOCAL = "http://127.0.0.1"


def _png(seed: int = 0, width: int = 32, height: int = 32) -> bytes:
    buffer = io.BytesIO()
    make_image(seed, width, height).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture
def studio(tmp_path, tiny_model):
    return Studio(tmp_path / "runs", [tiny_model], batch_size=4)


@pytest.fixture
def client(studio):
    with TestClient(create_app(studio), base_url=LOCAL) as client:
        yield client


def _upload(client: TestClient, seed: int = 0) -> str:
    answer = client.post("/api/images", files={"file": ("photo.png", _png(seed), "image/png")})
    assert answer.status_code == 201, answer.text
    return answer.json()["id"]


def _wait(client: TestClient, ids: list[int], timeout: float = 120) -> list[dict]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        jobs = {job["id"]: job for job in client.get("/api/jobs").json()["jobs"]}
        if all(jobs[i]["status"] in ("done", "failed", "cancelled") for i in ids):
            return [jobs[i] for i in ids]
        time.sleep(0.1)
    raise AssertionError(f"jobs not finished: {[jobs[i]['status'] for i in ids]}")


def test_jobs_of_two_requests_share_a_pack_and_land_in_the_store_like_a_sweep(client, studio):
    image = _upload(client)
    assert client.post("/api/queue/pause").json() == {"paused": True}
    one = client.post("/api/jobs", json={"image": image, "params": LIGHT_PARAMS})
    assert one.status_code == 201, one.text
    fixed = "\n".join(f"{key} = {value}" for key, value in LIGHT_PARAMS.items())
    toml = f'name = "grid"\nimages = ["{image}"]\n[grid]\nmotion_bucket_id = [20, 200]\n[fixed]\n{fixed}\n'
    grid = client.post("/api/sweeps", content=toml, headers={"content-type": "application/toml"})
    assert grid.status_code == 201, grid.text
    assert grid.json()["experiment"] == "grid" and len(grid.json()["jobs"]) == 2
    ids = [job["id"] for job in one.json()["jobs"] + grid.json()["jobs"]]
    assert {job["status"] for job in client.get("/api/jobs").json()["jobs"]} == {"queued"}  # paused
    client.post("/api/queue/resume")
    finished = _wait(client, ids)
    assert [job["status"] for job in finished] == ["done"] * 3
    for job in finished:
        video = client.get(job["video_url"])
        assert video.status_code == 200 and video.headers["content-type"] == "video/mp4"
        manifest = client.get(job["manifest_url"]).json()
        assert manifest["timings"]["pack_size"] == 3  # two requests, one UNet batch
        assert set(job["metrics"]) >= {"motion_score", "psnr_first"}
    detail = client.get("/api/experiments/grid").json()
    assert detail["swept"] == ["motion_bucket_id"] and len(detail["results"]) == 2
    assert all(client.get(row["input_url"]).status_code == 200 for row in detail["results"])
    assert "<svg" in client.get("/api/experiments/grid/plots").text
    report = client.post("/api/experiments/grid/report").json()["url"]
    assert "<video" in client.get(report).text

    # The spec the studio shows is the one `svdlab sweep` takes: run on the same folder, nothing is redone.
    spec = studio.runs_dir.parent / "grid.toml"
    spec.write_text(client.get("/api/experiments/grid/spec.toml").text)
    result = CliRunner().invoke(cli, ["sweep", str(spec), "--runs-dir", str(studio.runs_dir), "--quiet"])
    assert result.exit_code == 0, result.output
    assert "0 videos made, 2 already done" in result.output


def test_sweeps_of_the_cli_in_the_same_runs_folder_appear(client, studio, tmp_path):
    make_image(5, 32, 32).save(tmp_path / "photo.png")
    fixed = "\n".join(f"{key} = {value}" for key, value in LIGHT_PARAMS.items())
    spec = tmp_path / "cli.toml"
    spec.write_text(f'name = "from-cli"\nmodel = "tiny-random"\nimages = ["photo.png"]\n[fixed]\n{fixed}\n')
    result = CliRunner().invoke(cli, ["sweep", str(spec), "--runs-dir", str(studio.runs_dir), "--quiet"])
    assert result.exit_code == 0, result.output
    listed = {row["name"]: row for row in client.get("/api/experiments").json()["experiments"]}
    assert listed["from-cli"]["source"] == "sweep" and listed["from-cli"]["done"] == 1
    row = client.get("/api/experiments/from-cli").json()["results"][0]
    assert client.get(row["video_url"]).status_code == 200


def test_cancel_queued_and_running_jobs_and_pause(client):
    image = _upload(client)
    client.post("/api/queue/pause")
    queued = client.post(
        "/api/sweeps",
        json={"images": [image], "grid": {"seed": [1, 2, 3]}, "fixed": LIGHT_PARAMS},
    ).json()["jobs"]
    first, second, third = (job["id"] for job in queued)
    cancelled = client.post(f"/api/jobs/{second}/cancel")
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    again = client.post(f"/api/jobs/{second}/cancel")
    assert again.status_code == 409 and "already cancelled" in again.json()["error"]
    assert client.post("/api/jobs/99999/cancel").status_code == 404
    client.post("/api/queue/resume")
    assert [job["status"] for job in _wait(client, [first, second, third])] == ["done", "cancelled", "done"]

    slow = client.post("/api/jobs", json={"image": image, "params": {**LIGHT_PARAMS, "steps": 1000}})
    slow_id = slow.json()["jobs"][0]["id"]
    deadline = time.monotonic() + 60
    while client.get(f"/api/jobs/{slow_id}").json()["step"] < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    running = client.get(f"/api/jobs/{slow_id}").json()
    assert running["status"] == "running" and 0 < running["step"] < 1000 and running["eta_s"] > 0
    started = time.monotonic()
    assert client.post(f"/api/jobs/{slow_id}/cancel").json()["status"] == "cancelled"
    after = client.post("/api/jobs", json={"image": image, "params": {**LIGHT_PARAMS, "seed": 9}})
    assert _wait(client, [after.json()["jobs"][0]["id"]])[0]["status"] == "done"
    assert time.monotonic() - started < 30  # the cancelled pack stopped at its next step
    cancelled_job = client.get(f"/api/jobs/{slow_id}").json()
    assert cancelled_job["status"] == "cancelled" and cancelled_job["video_url"] is None


def test_two_workers_share_the_queue_and_make_each_job_once(tmp_path):
    models = [load_model("tiny-random", device="cpu", dtype="float32") for _ in range(2)]
    studio = Studio(tmp_path / "runs", models, batch_size=2)
    with TestClient(create_app(studio), base_url=LOCAL) as client:
        image = _upload(client)
        spec = {"images": [image], "grid": {"seed": list(range(8))}, "fixed": LIGHT_PARAMS}
        jobs = client.post("/api/sweeps", json=spec).json()["jobs"]
        finished = _wait(client, [job["id"] for job in jobs])
    assert [job["status"] for job in finished] == ["done"] * 8
    assert len({job["key"] for job in finished}) == 8
    assert {job["worker"].split()[0] for job in finished} == {"studio-worker-0", "studio-worker-1"}
    assert len(list(studio.runs_dir.rglob("*.mp4"))) == 8


def test_malformed_requests_get_a_one_line_4xx(client, studio):
    image = _upload(client)
    cases = [
        (
            "post",
            "/api/jobs",
            {"content": b"{not json", "headers": {"content-type": "application/json"}},
            422,
        ),
        ("post", "/api/jobs", {"json": {"params": {}}}, 422),
        ("post", "/api/jobs", {"json": {"image": image, "params": {"steps": -3}}}, 400),
        ("post", "/api/jobs", {"json": {"image": image, "params": {"bogus": 1}}}, 400),
        ("post", "/api/jobs", {"json": {"image": image, "params": {"width": 30}}}, 400),
        ("post", "/api/jobs", {"json": {"image": "0123456789abcdef"}}, 400),
        ("post", "/api/jobs", {"json": {"image": "../../etc/passwd"}}, 400),
        ("post", "/api/jobs", {"json": {"image": "/etc/passwd"}}, 400),
        ("post", "/api/jobs", {"json": {"image": "uploads/../svdlab.db"}}, 400),
        ("post", "/api/jobs", {"json": {"image": image, "experiment": "../escape"}}, 400),
        (
            "post",
            "/api/sweeps",
            {"content": b"name = [", "headers": {"content-type": "application/toml"}},
            400,
        ),
        ("post", "/api/sweeps", {"content": b"\xff\xfe", "headers": {"content-type": "text/plain"}}, 400),
        ("post", "/api/sweeps", {"json": {"images": [image], "model": "svd-xt"}}, 400),
        ("post", "/api/sweeps", {"json": [1, 2]}, 400),
        ("post", "/api/sweeps", {"json": {"images": [image], "grid": {"steps": []}}}, 400),
        ("post", "/api/images", {"files": {"file": ("notes.png", b"just text", "image/png")}}, 400),
        ("post", "/api/images", {"data": {"other": "x"}}, 422),
        ("get", "/api/jobs/123456", {}, 404),
        ("get", "/api/jobs/not-a-number", {}, 422),
        ("get", "/api/experiments/nothing-here", {}, 404),
        ("get", "/api/images/zzzz", {}, 400),
        ("get", "/files/svdlab.db", {}, 404),
        ("get", "/files/../../etc/passwd", {}, 404),
        ("get", "/files/%2e%2e/%2e%2e/etc/passwd", {}, 404),
        ("get", "/files/uploads/" + image + ".png", {}, 404),
        ("post", "/api/jobs/1/cancel", {}, 404),
    ]
    for method, path, arguments, status in cases:
        answer = getattr(client, method)(path, **arguments)
        assert answer.status_code == status, (path, arguments, answer.status_code, answer.text)
        error = answer.json()["error"]
        assert error and "\n" not in error and "Traceback" not in error, (path, error)
    assert not list(studio.runs_dir.parent.glob("escape*"))
    assert client.get("/api/jobs").json()["jobs"] == []  # nothing was queued by any of them


def test_uploads_are_checked_for_size_pixels_and_kind(tmp_path, tiny_model):
    studio = Studio(tmp_path / "runs", [tiny_model], max_upload_bytes=20_000, max_pixels=64 * 64)
    with TestClient(create_app(studio), base_url=LOCAL) as client:
        big = client.post("/api/images", files={"file": ("big.png", b"\x89PNG" + b"0" * 30_000, "image/png")})
        assert big.status_code == 413 and "over 20000 bytes" in big.json()["error"]
        wide = client.post("/api/images", files={"file": ("wide.png", _png(0, 100, 100), "image/png")})
        assert wide.status_code == 400 and "pixels" in wide.json()["error"]
        fine = client.post("/api/images", files={"file": ("ok.png", _png(0, 64, 48), "image/png")}).json()
        twice = client.post("/api/images", files={"file": ("again.png", _png(0, 64, 48), "image/png")}).json()
        assert fine["id"] == twice["id"] and (fine["width"], fine["height"]) == (64, 48)
        assert client.get(fine["url"]).headers["content-type"] == "image/png"

        (tmp_path / "web").mkdir()
        (tmp_path / "web" / "photo.png").write_bytes(_png(4, 64, 48))
        (tmp_path / "web" / "notes.png").write_text("not a picture")
        handler = functools.partial(_QuietHandler, directory=tmp_path / "web")
        web = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=web.serve_forever, daemon=True).start()
        url = f"http://127.0.0.1:{web.server_address[1]}"
        try:
            client.post("/api/queue/pause")
            from_url = client.post("/api/jobs", json={"image": f"{url}/photo.png", "params": LIGHT_PARAMS})
            assert from_url.status_code == 201, from_url.text
            saved = {path.stem for path in (studio.runs_dir / "uploads").glob("*.png")}
            assert from_url.json()["jobs"][0]["image"] in saved  # kept as an upload, fetched once
            not_image = client.post("/api/jobs", json={"image": f"{url}/notes.png"})
            assert not_image.status_code == 400 and "\n" not in not_image.json()["error"]
        finally:
            web.shutdown()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


def test_token_host_origin_and_content_security_policy(tmp_path, tiny_model):
    with pytest.raises(SvdlabError, match="--token"):
        check_exposure("0.0.0.0", None)
    check_exposure("0.0.0.0", "secret")
    check_exposure("::1", None)

    open_studio = Studio(tmp_path / "open", [tiny_model])
    with TestClient(create_app(open_studio), base_url=LOCAL) as client:
        page = client.get("/")
        policy = page.headers["content-security-policy"]
        assert (
            "script-src 'self'" in policy and "object-src 'none'" in policy and "unsafe-inline" not in policy
        )
        assert not re.search(r"<script(?![^>]*\bsrc=)", page.text)  # no inline script on the page
        assert not re.search(r"\sstyle=|<style", page.text)
        rebound = client.get("/api/jobs", headers={"host": "attacker.example"})
        assert rebound.status_code == 403
        cross = client.post("/api/queue/pause", headers={"origin": "http://attacker.example"})
        assert cross.status_code == 403 and not client.get("/api/jobs").json()["paused"]

    guarded = Studio(tmp_path / "guarded", [tiny_model], token="s3cret")
    with TestClient(create_app(guarded), base_url="http://studio.lan:7860") as client:
        assert client.get("/api/model").status_code == 401
        assert client.get("/").status_code == 401
        assert client.get("/api/model", headers={"authorization": "Bearer wrong"}).status_code == 401
        assert client.get("/api/model", headers={"authorization": "Bearer s3cret"}).status_code == 200
        login = client.get("/?token=s3cret", follow_redirects=False)
        assert login.status_code == 303 and "httponly" in login.headers["set-cookie"].lower()
        assert client.get("/api/model").status_code == 200  # the cookie now carries the token
        assert client.get("/").status_code == 200


def test_the_openapi_lists_the_api(client):
    paths = client.get("/openapi.json").json()["paths"]
    for path in ("/api/jobs", "/api/sweeps", "/api/images", "/api/events", "/api/jobs/{job_id}/cancel"):
        assert path in paths
    assert client.get("/docs").status_code == 200
    assert Path(create_app.__code__.co_filename).parent.joinpath("static", "index.html").is_file()


def test_events_stream_the_queue(client):
    image = _upload(client)
    client.post("/api/queue/pause")
    job = client.post("/api/jobs", json={"image": image, "params": LIGHT_PARAMS}).json()["jobs"][0]
    with client.stream("GET", "/api/events") as stream:
        lines = stream.iter_lines()
        assert next(lines) == "event: queue"
        snapshot = json.loads(next(lines).removeprefix("data: "))
    assert snapshot["paused"] is True and [j["id"] for j in snapshot["jobs"]] == [job["id"]]
    client.post("/api/queue/resume")
    assert _wait(client, [job["id"]])[0]["status"] == "done"


PARAMETER_NAMES = [*GenerationParams.model_fields, "size", "bogus"]


def _random_value(rng: random.Random, depth: int = 0):
    kinds = ["int", "float", "text", "none", "bool"] + (["list", "dict"] if depth < 2 else [])
    kind = rng.choice(kinds)
    if kind == "int":
        return rng.choice([0, -1, 1, 2, 7, 2**63, -(2**70), 10**9])
    if kind == "float":
        return rng.choice([0.5, -3.25, 1e308, 1e-9])
    if kind == "text":
        return rng.choice(["", "x", "../..", "0:10", "3:1", "crop", "heun", "32x32", "ü\x00", "a" * 300])
    if kind == "none":
        return None
    if kind == "bool":
        return rng.random() < 0.5
    if kind == "list":
        return [_random_value(rng, depth + 1) for _ in range(rng.randint(0, 3))]
    return {rng.choice(PARAMETER_NAMES): _random_value(rng, depth + 1) for _ in range(rng.randint(0, 3))}


def _random_body(rng: random.Random, image: str, path: str):
    """A valid body with some parts replaced by random values, or something random altogether."""
    params = {
        **LIGHT_PARAMS,
        **{rng.choice(PARAMETER_NAMES): _random_value(rng, 1) for _ in range(rng.randint(0, 1))},
    }
    if path == "/api/jobs":
        body = {"image": image, "params": params, "experiment": "fuzz"}
    else:
        values = [_random_value(rng, 2) for _ in range(rng.randint(0, 2))]
        grid = {rng.choice(PARAMETER_NAMES): values} if rng.random() < 0.5 else {"seed": [1, 2]}
        body = {
            "name": "fuzz",
            "images": [image],
            "grid": grid,
            "fixed": params,
            "outputs": {"format": "gif"},
        }
    if rng.random() < 0.5:
        body[rng.choice(sorted(body))] = _random_value(rng)
    return body if rng.random() < 0.9 else _random_value(rng)


def test_random_requests_never_get_a_500(client):
    image = _upload(client)
    client.post("/api/queue/pause")  # what passes is queued, not run
    rng = random.Random(0)
    statuses = []
    for _ in range(150):
        path = rng.choice(["/api/jobs", "/api/sweeps", "/api/spec.toml"])
        body = _random_body(rng, image, path)
        answer = client.post(path, json=body)
        statuses.append(answer.status_code)
        assert answer.status_code < 500, (path, body, answer.text)
        if answer.status_code >= 400:
            assert "\n" not in answer.json()["error"]
        raw = bytes(rng.randrange(256) for _ in range(rng.randint(0, 40)))
        answer = client.post("/api/sweeps", content=raw, headers={"content-type": "application/toml"})
        assert 400 <= answer.status_code < 500, (raw, answer.text)
    assert 10 < sum(status < 300 for status in statuses) < 140  # both accepted and refused bodies were tried
