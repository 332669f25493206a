"""The studio's web page in headless Chromium against a real `svdlab serve` on the tiny model: upload, knobs,
the live queue, the gallery, the synced compare view with its metrics table and plots, the history."""

import os
import re
import subprocess
import time
from pathlib import Path

import pytest
from playwright.sync_api import expect, sync_playwright

from benchmarks.studio_load import free_port, start_server
from svdlab.params import GenerationParams
from tests.conftest import make_image
from tests.test_report import CHROMIUM, CHROMIUM_ARGS

SCREENSHOT = Path(__file__).resolve().parent.parent / "docs" / "studio-screenshot.png"
SMALL_KNOBS = {"steps": "2", "num_frames": "4", "width": "64", "height": "48"}
RECORD_STATUSES = """
window.__statuses = new Set();
new MutationObserver((changes) => {
  for (const change of changes) {
    const nodes = change.type === "attributes" ? [change.target] : [...change.addedNodes];
    for (const node of nodes) {
      if (node.matches && node.matches("li.job")) window.__statuses.add(node.dataset.status);
    }
  }
}).observe(document, { subtree: true, childList: true, attributes: true, attributeFilter: ["data-status"] });
"""
ALL_READY = "(selector) => [...document.querySelectorAll(selector)].every(v => v.readyState >= 2)"
ALL_PLAYING = "() => [...document.querySelectorAll('video.compare')].every(v => !v.paused)"
IN_STEP = """() => {
  const videos = [...document.querySelectorAll('video.compare')];
  const t = videos.map(v => v.currentTime), d = videos[0].duration;
  return t.every(x => Math.min(Math.abs(x - t[0]), d - Math.abs(x - t[0])) < 0.15);
}"""
FRAMES = "[...document.querySelectorAll('video.compare')].map(v => Math.floor(v.currentTime * 7 + 1e-3))"


def _until(page, function: str, arg=None, timeout_s: float = 20) -> None:
    """Wait until a JavaScript function returns true (page.wait_for_function evals strings, which the
    studio's CSP forbids)."""
    deadline = time.monotonic() + timeout_s
    while not page.evaluate(function, arg):
        assert time.monotonic() < deadline, f"timed out after {timeout_s} s waiting for {function}"
        time.sleep(0.05)


def _texts(page, selector: str) -> list[str]:
    return page.eval_on_selector_all(selector, "nodes => nodes.map(n => n.textContent)")


@pytest.fixture(scope="module")
def studio(tmp_path_factory):
    """A real `svdlab serve` on the tiny model in a subprocess: (base URL, its folder with a 64x48 photo)."""
    folder = tmp_path_factory.mktemp("studio")
    make_image(0).save(folder / "photo.png")
    port = free_port()
    server = start_server(folder / "runs", port)
    try:
        yield f"http://127.0.0.1:{port}", folder
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def test_studio_page_queues_shows_and_compares_videos_in_step(studio, tmp_path):
    base, folder = studio
    problems, requests = [], []
    with sync_playwright() as driver:
        context = driver.chromium.launch_persistent_context(
            tmp_path / "profile",
            executable_path=str(CHROMIUM),
            args=CHROMIUM_ARGS,
            headless=True,
            viewport={"width": 1280, "height": 900},
        )
        page = context.new_page()
        page.on("console", lambda message: problems.append(message.text) if message.type == "error" else None)
        page.on("pageerror", lambda error: problems.append(str(error)))
        page.on("request", lambda request: requests.append(request.url))
        page.add_init_script(RECORD_STATUSES)
        page.goto(base + "/")

        # Create one small video, first held in the paused queue so that its queued state is seen for sure.
        expect(page.locator(".knob")).to_have_count(len(GenerationParams.model_fields))  # one per setting
        page.set_input_files("#image-file", str(folder / "photo.png"))
        expect(page.locator("#image-size")).to_have_text("64 × 48 px")
        expect(page.locator("#image-preview")).to_be_visible()
        assert page.get_attribute("#image-preview", "src").startswith("/api/images/")
        for name, value in SMALL_KNOBS.items():
            page.fill(f'input[name="{name}"]', value)
        expect(page.locator("#grid-size")).to_have_text("1 video")
        page.click("#pause")
        expect(page.locator("#queue-state")).to_have_text("paused")
        page.click("#submit")
        expect(page.locator("#message")).to_have_text(re.compile(r"^Queued 1 video in studio-"))
        expect(page.locator('li.job[data-status="queued"] button.cancel')).to_be_visible()
        page.click("#pause")
        expect(page.locator('li.job[data-status="done"]')).to_have_count(1, timeout=60_000)
        done = page.locator('li.job[data-status="done"] progress')
        assert done.evaluate("p => [p.value, p.max]") == [2, 2]
        expect(page.locator("#cards video.result")).to_have_count(1)
        _until(page, ALL_READY, "#cards video.result")
        statuses = set(page.evaluate("[...window.__statuses]"))
        assert {"queued", "done"} <= statuses <= {"queued", "running", "done"}

        # A grid over motion_bucket_id: three videos in a named experiment, all picked and compared.
        page.fill('input.vary[data-param="motion_bucket_id"]', "20, 100, 200")
        expect(page.locator("#grid-size")).to_have_text("3 videos")
        page.fill("#experiment-name", "buckets")
        page.click("#submit")
        expect(page.locator("#message")).to_have_text("Queued 3 videos in buckets.")
        expect(page.locator("#experiment-select")).to_have_value("buckets")
        expect(page.locator('li.job[data-status="done"]')).to_have_count(4, timeout=60_000)
        expect(page.locator("#cards video.result")).to_have_count(3)
        _until(page, ALL_READY, "#cards video.result")
        captions = _texts(page, "#cards .caption")
        assert [caption.split(",")[0] for caption in captions] == [
            f"motion_bucket_id {bucket}" for bucket in (20, 100, 200)
        ]
        expect(page.locator("#compare-button")).to_be_disabled()
        page.click("#pick-all")
        assert page.eval_on_selector_all("input.pick", "boxes => boxes.map(b => b.checked)") == [True] * 3
        page.click("#compare-button")
        expect(page.locator("#compare")).to_be_visible()
        expect(page.locator("video.compare")).to_have_count(3)
        _until(page, ALL_READY, "video.compare")

        page.click("#play-all")
        _until(page, ALL_PLAYING)
        page.wait_for_timeout(1000)
        assert page.evaluate(ALL_PLAYING)
        _until(page, IN_STEP, timeout_s=10)
        page.click("#play-all")
        assert page.evaluate("[...document.querySelectorAll('video.compare')].every(v => v.paused)")
        page.click("#step-forward")
        first = page.evaluate(FRAMES)
        page.click("#step-forward")
        second = page.evaluate(FRAMES)
        assert len(set(first)) == len(set(second)) == 1 and second[0] == (first[0] + 1) % 4

        header = _texts(page, "#compare-table thead th")
        assert len(header) == 1 + 3 and header[1].startswith("motion_bucket_id 20")
        widths = page.eval_on_selector_all("#compare-table tbody tr", "rows => rows.map(r => r.cells.length)")
        assert widths and set(widths) == {4}
        expect(page.locator("#plots svg").first).to_be_visible()

        page.screenshot(path=str(tmp_path / "studio.png"), full_page=True)
        if os.environ.get("SVDLAB_SCREENSHOT"):
            SCREENSHOT.parent.mkdir(exist_ok=True)
            page.screenshot(path=str(SCREENSHOT), full_page=True)

        # The history lists both experiments; a name there selects it in the gallery.
        names = _texts(page, "#history tbody button.link")
        assert len(names) == 2 and names[0] == "buckets" and names[1].startswith("studio-")
        page.locator("#history tbody button.link", has_text=names[1]).click()
        expect(page.locator("#experiment-select")).to_have_value(names[1])
        expect(page.locator("#cards video.result")).to_have_count(1)

        # The API reference at /docs renders from /openapi.json with the server's own script (no CDN).
        page.goto(base + "/docs")
        expect(page.locator(".endpoint").first).to_be_visible()
        titles = _texts(page, ".endpoint h3")
        assert "POST /api/sweeps" in titles and "POST /api/jobs/{job_id}/cancel" in titles
        context.close()
    assert problems == []
    assert requests and all(url.startswith(base + "/") or url.startswith("data:") for url in requests)
    assert (tmp_path / "studio.png").stat().st_size > 10_000
