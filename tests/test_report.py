"""The static HTML report: structure, edge cases, and playback and sorting in headless Chromium."""

import functools
import http.server
import os
import re
import threading
from pathlib import Path

import PIL.Image
import pytest
from typer.testing import CliRunner

from svdlab.cli import app
from svdlab.errors import SvdlabError
from svdlab.experiments.explain import PARAMETER_NOTES, change_phrase, summary
from svdlab.experiments.report import _plot_svg, write_report
from svdlab.experiments.store import Store
from svdlab.metrics import METRIC_UNITS
from tests.test_experiments import SMALL, write_spec

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOT = Path(__file__).resolve().parent.parent / "docs" / "report-screenshot.png"


@pytest.fixture(scope="module")
def sweep(tmp_path_factory) -> Path:
    """The runs folder of a real 2 images x 2 motion buckets sweep on the tiny model."""
    folder = tmp_path_factory.mktemp("sweep")
    spec = write_spec(folder, SMALL)
    runs = folder / "runs"
    result = CliRunner().invoke(app, ["sweep", str(spec), "--runs-dir", str(runs), "--quiet"])
    assert result.exit_code == 0, result.output
    return runs


def test_report_is_self_contained_with_videos_table_and_plots(sweep):
    index = write_report(sweep, "small")
    assert index == sweep / "small" / "report" / "index.html"
    page = index.read_text()
    rows = Store(sweep).results("small")
    assert page.count("<video ") == len(rows) == 4
    assert page.count("autoplay loop muted playsinline") == 4
    assert "motion_bucket_id 60" in page and "motion_bucket_id 200" in page
    assert page.index("motion_bucket_id 60") < page.index("motion_bucket_id 200")
    table = re.search(r'<table class="sortable" id="metrics">.*?</table>', page).group(0)
    assert table.count("<tr>") == 1 + 4
    for metric, unit in METRIC_UNITS.items():
        header = rf"<th [^>]*>{metric}<small>{re.escape(unit)}</small><small>[^<]+</small></th>"
        assert re.search(header, table)
    assert "ssim_first<small>index (-1..1, 1 = identical)</small><small>higher is better</small>" in table
    assert "warp_error<small>0..1</small><small>lower is better</small>" in table
    plots = re.findall(r'<svg class="plot"[^>]*data-metric="(\w+)" data-param="(\w+)"', page)
    assert sorted(plots) == sorted((metric, "motion_bucket_id") for metric in METRIC_UNITS)
    assert (
        "http://" not in page
        and "https://" not in page
        and "//" not in "".join(re.findall(r'src="[^"]*"', page))
    )
    sources = re.findall(r'<video [^>]*src="([^"]+)"', page)
    assert len(set(sources)) == 4
    for source in sources:
        video = (index.parent / source).resolve()
        assert video.is_file() and video.is_relative_to(index.parent.resolve()) and video.suffix == ".mp4"
    inputs = re.findall(r'<figure class="input"><img src="([^"]+)"', page)
    assert len(inputs) == 2  # one per image, first in its row
    for source in inputs:
        with PIL.Image.open(index.parent / source) as fitted:
            assert fitted.size == (64, 48)  # the tiny model's size, as the model saw the 80x60 photo
    for row in re.findall(r'<div class="grid">(.*?)</div>', page):
        assert row.startswith('<figure class="input">') and row.count("<video ") == 2
    assert page.count('data-fps="7" data-frames="4"') == 4
    for control in ('id="play"', 'id="back"', 'id="forward"', 'id="speed"', 'id="frame"'):
        assert control in page
    intro = re.search(r'<dl class="intro">.*?</dl>', page).group(0)
    assert "Model: tiny-random" in intro and "random weights" in intro
    assert "Swept: motion_bucket_id (60, 200)" in intro and PARAMETER_NOTES["motion_bucket_id"] in intro
    assert "From motion_bucket_id 60 to 200: motion " in intro and "frame-0 PSNR " in intro
    again = write_report(sweep, "small")
    assert again.read_text().count("<video ") == 4 and len(list((again.parent / "videos").iterdir())) == 4
    assert not list(again.parent.parent.glob(".report*"))


class _Job:
    def __init__(self, key: str, source: str, swept: dict):
        self.key, self.source, self.swept = key, source, swept
        self.params = type("P", (), {"seed": 1, "model_dump": staticmethod(lambda: {"seed": 1})})()


def _hand_made_store(runs: Path) -> None:
    """A store with an odd image name, a non-numeric and a single-valued swept parameter, inf and NaN."""
    store = Store(runs)
    grid = {"motion_bucket_id": [60, 200], "fit": ["crop", "pad"], "fps": [7]}
    store.start_experiment("odd", {"name": "odd", "grid": grid}, "tiny-random")
    (runs / "odd").mkdir()
    values = iter([float("inf"), 30.0, float("nan"), 25.0, 40.0, 35.0, 20.0, 10.0])
    for image in ("<x>&.png", "b.png"):
        for bucket in (60, 200):
            for fit in ("crop", "pad"):
                job = _Job(
                    f"{image[0]}{bucket}{fit}", image, {"motion_bucket_id": bucket, "fit": fit, "fps": 7}
                )
                video = f"odd/{job.key}.mp4"
                if job.key != "b200pad":
                    (runs / video).write_bytes(b"not really a video")
                metrics = {"psnr_first": next(values), "motion_score": 1.0}
                manifest = {"model": {"name": "tiny-random"}, "timings": {}}
                store.record_done(
                    "odd", job, manifest, {"path": video, "manifest": "m", "sha256": "s"}, metrics
                )
    store.record_failed(
        "odd", _Job("fail", "b.png", {"motion_bucket_id": 1, "fit": "crop", "fps": 7}), "m", "boom"
    )
    store.close()


def test_report_escapes_skips_unplottable_parameters_and_handles_inf_nan_and_missing_videos(tmp_path):
    _hand_made_store(tmp_path)
    page = write_report(tmp_path, "odd").read_text()
    assert "&lt;x&gt;&amp;.png" in page and "<x>" not in page
    plots = re.findall(r'data-metric="(\w+)" data-param="(\w+)"', page)
    assert sorted(plots) == [("motion_score", "motion_bucket_id"), ("psnr_first", "motion_bucket_id")]
    assert 'data-value="Infinity">inf</td>' in page and 'data-value="">—</td>' in page
    assert page.count("<video ") == 7 and "video missing: odd/b200pad.mp4" in page
    assert "<h2>Failed jobs</h2>" in page and "boom" in page and "9 jobs: 8 done, 1 failed" in page


def test_summary_sentences_are_computed_from_the_metrics():
    rows = [
        {"image": image, "motion_bucket_id": bucket, "motion_score": motion, "psnr_first": psnr}
        for image, scale in (("a", 1.0), ("b", 3.0))
        for bucket, motion, psnr in (
            (20, 0.1 * scale, 25.5),
            (120, 0.5 * scale, 25.4),
            (240, 1.7 * scale, 24.3),
        )
    ]
    (sentence,) = summary(rows, ["motion_bucket_id"], METRIC_UNITS)
    assert sentence == (
        "From motion_bucket_id 20 to 240: motion rises 17x (0.2 → 3.4 px/frame); "
        "frame-0 PSNR falls by 1.2 dB (25.5 → 24.3 dB)."
    )
    assert change_phrase("ssim_first", 0.874, 0.87, "index") == "frame-0 SSIM stays flat (0.874 → 0.87)"
    assert change_phrase("ssim_first", 0.874, 0.76, "index") == "frame-0 SSIM falls by 0.114 (0.874 → 0.76)"
    assert change_phrase("warp_error", 0.015, 0.062, "0..1").startswith("warp error rises 4.13x")


def _y_range(svg: str) -> tuple[float, float]:
    low, high = re.search(r'data-y-low="([^"]+)" data-y-high="([^"]+)"', svg).groups()
    return float(low), float(high)


def test_plot_axes_do_not_make_a_flat_metric_look_like_a_trend():
    series = {"a": {20: 25.5, 120: 25.45}, "b": {20: 25.4, 120: 25.3}}
    flat = _plot_svg("psnr_first", "motion_bucket_id", series)
    low, high = _y_range(flat)
    assert high - low >= 0.2 * 25.5 and low <= 25.3 and high >= 25.5
    assert 'class="spread"' in flat  # the range over images is marked
    rising = _plot_svg("motion_score", "motion_bucket_id", {"a": {20: 0.08, 120: 0.6, 240: 1.7}})
    assert _y_range(rising)[0] == 0 and 'class="spread"' not in rising


def test_report_errors_say_what_to_do(tmp_path):
    with pytest.raises(SvdlabError, match="no experiment 'nope'.*svdlab sweep"):
        write_report(tmp_path, "nope")
    store = Store(tmp_path)
    store.start_experiment("empty", {"name": "empty", "grid": {}}, "tiny-random")
    store.record_failed("empty", _Job("k", "a.png", {}), "tiny-random", "boom")
    store.close()
    with pytest.raises(SvdlabError, match="no finished jobs") as caught:
        write_report(tmp_path, "empty")
    assert "\n" not in str(caught.value)


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


@pytest.mark.skipif(
    not CHROMIUM.is_file(), reason="needs Debian's chromium at /usr/bin/chromium (.ci/run installs it)"
)
def test_report_plays_in_sync_and_sorts_in_headless_chromium(sweep, tmp_path):
    playwright = pytest.importorskip("playwright.sync_api")
    folder = write_report(sweep, "small").parent
    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(_QuietHandler, directory=folder)
    )
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}/"
    problems, requests = [], []
    try:
        with playwright.sync_playwright() as driver:
            context = driver.chromium.launch_persistent_context(
                tmp_path / "profile", executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
            )
            page = context.new_page()
            page.on(
                "console", lambda message: problems.append(message.text) if message.type == "error" else None
            )
            page.on("pageerror", lambda error: problems.append(str(error)))
            page.on("request", lambda request: requests.append(request.url))
            page.goto(base + "index.html")
            page.wait_for_function(  # python's http.server has no byte ranges: the page loads them as blobs
                "[...document.querySelectorAll('video')].every(v => v.readyState >= 2 && v.seekable.length"
                " && v.seekable.end(0) > 0)",
                timeout=20_000,
            )
            playing = "[...document.querySelectorAll('video')].filter(v => !v.paused).length"
            page.wait_for_function(f"{playing} == 4", timeout=20_000)  # blobs start as they arrive
            assert page.evaluate(playing) == 4
            page.wait_for_function(
                """(() => {
                  const t = [...document.querySelectorAll('video')].map(v => v.currentTime);
                  const d = document.querySelector('video').duration;
                  return t.every(x => Math.min(Math.abs(x - t[0]), d - Math.abs(x - t[0])) < 0.15);
                })()""",
                timeout=10_000,
            )
            assert page.evaluate("[...document.images].every(i => i.complete && i.naturalWidth === 64)")
            page.click("#play")
            assert page.evaluate("[...document.querySelectorAll('video')].every(v => v.paused)")
            frames = "[...document.querySelectorAll('video')].map(v => Math.floor(v.currentTime * 7 + 1e-3))"
            page.click("#forward")
            first = page.evaluate(frames)
            page.click("#forward")
            page.click("#forward")
            third = page.evaluate(frames)
            assert len(set(first)) == len(set(third)) == 1 and third[0] == (first[0] + 2) % 4
            readout = f"document.getElementById('frame').textContent === 'frame {third[0] + 1} / 4'"
            page.wait_for_function(readout)
            page.click("#back")
            assert set(page.evaluate(frames)) == {(third[0] - 1) % 4}
            page.select_option("#speed", "0.25")
            page.click("#play")
            page.wait_for_function(
                "[...document.querySelectorAll('video')].every(v => !v.paused && v.playbackRate === 0.25)",
                timeout=5_000,
            )
            column = "[...document.querySelectorAll('#metrics tbody tr')].map(r => +r.cells[3].dataset.value)"
            page.click("#metrics th:nth-child(4)")
            ascending = page.evaluate(column)
            page.click("#metrics th:nth-child(4)")
            descending = page.evaluate(column)
            assert ascending == sorted(ascending) and descending == sorted(ascending, reverse=True)
            assert ascending != descending
            page.screenshot(path=str(tmp_path / "report.png"), full_page=True)
            if os.environ.get("SVDLAB_SCREENSHOT"):
                SCREENSHOT.parent.mkdir(exist_ok=True)
                page.screenshot(path=str(SCREENSHOT), full_page=True)
            context.close()
    finally:
        server.shutdown()
        server.server_close()
    assert problems == []
    assert requests and all(url.removeprefix("blob:").startswith(base) for url in requests)
    assert (tmp_path / "report.png").stat().st_size > 10_000
