"""The static HTML report of an experiment: synced video grids, a sortable metrics table and SVG plots.

The report is one self-contained folder (`runs/NAME/report/`) with `index.html` and a copy of every video,
so it can be moved, zipped or served as it is; it loads nothing from the network.
"""

from __future__ import annotations

import html
import json
import math
import os
import shutil
from pathlib import Path
from urllib.parse import quote

from svdlab.errors import SvdlabError
from svdlab.experiments.explain import METRIC_NOTES, MODEL_CAVEATS, PARAMETER_NOTES, direction, summary
from svdlab.experiments.store import Store
from svdlab.media import fit_image, load_image
from svdlab.media.atomic import atomic_path
from svdlab.media.manifest import manifest_path
from svdlab.metrics import METRIC_UNITS
from svdlab.models.presets import PRESETS

COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#bcbd22", "#17becf")
MEAN_COLOR = "#222"
PLOT_WIDTH, PLOT_HEIGHT, LEGEND_WIDTH = 440, 260, 150
LEFT, RIGHT, TOP, BOTTOM = 60, 14, 30, 44
X_PAD = 10
MIN_SPAN_SHARE = 0.2  # a y axis spans at least 20 % of its largest value: noise must not look like a trend
SPEEDS = (1, 0.5, 0.25, 0.1)

CSS = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 24px; color: #222; background: #fafafa; }
h1 { margin: 0 0 4px; } h2 { margin-top: 32px; border-bottom: 1px solid #ddd; }
pre { background: #fff; border: 1px solid #ddd; padding: 8px; max-height: 320px; overflow: auto; }
.grid { display: flex; flex-wrap: wrap; gap: 12px; }
figure { margin: 0; background: #fff; border: 1px solid #ddd; padding: 6px; width: 180px; }
figure video, figure img { width: 100%; display: block; background: #000; image-rendering: auto; }
figure.input { border-color: #888; background: #f3f3f3; }
.intro { max-width: 60em; } .intro dt { font-weight: bold; margin-top: 6px; }
.intro dd { margin-left: 1.5em; }
.controls { position: sticky; top: 0; z-index: 1; background: #fafafa; padding: 6px 0; display: flex;
  gap: 8px; align-items: center; border-bottom: 1px solid #ddd; }
.controls button, .controls select { font: inherit; padding: 2px 10px; }
figcaption { font-size: 12px; margin-top: 4px; }
table { border-collapse: collapse; background: #fff; font-variant-numeric: tabular-nums; }
th, td { border: 1px solid #ddd; padding: 3px 8px; text-align: right; }
th { cursor: pointer; background: #f0f0f0; user-select: none; vertical-align: bottom; }
th small { display: block; font-weight: normal; color: #666; }
th[aria-sort="ascending"]::after { content: " \\25B2"; }
th[aria-sort="descending"]::after { content: " \\25BC"; }
td.text { text-align: left; white-space: nowrap; }
.plots { display: flex; flex-wrap: wrap; gap: 12px; }
svg.plot { background: #fff; border: 1px solid #ddd; font-size: 11px; }
.missing { color: #a00; }
"""

SCRIPT = """
(() => {
  const videos = [...document.querySelectorAll("video.job")];
  const last = new Map();
  const playButton = document.getElementById("play");
  const readout = document.getElementById("frame");
  function fps(v) { return Number(v.dataset.fps) || 8; }
  function frames(v) { return Number(v.dataset.frames) || Math.max(1, Math.round(v.duration * fps(v))); }
  function frameOf(v) { return Math.min(frames(v) - 1, Math.floor(v.currentTime * fps(v) + 1e-3)); }
  function groups() {
    const byDuration = new Map();
    for (const v of videos) {
      if (!(v.duration > 0)) continue;
      const k = v.duration.toFixed(2);
      if (!byDuration.has(k)) byDuration.set(k, []);
      byDuration.get(k).push(v);
    }
    return [...byDuration.values()];
  }
  function tick() {
    for (const group of groups()) {
      const leader = group[0];
      const t = leader.currentTime;
      const looped = t + 0.05 < (last.has(leader) ? last.get(leader) : t);
      last.set(leader, t);
      for (const v of group.slice(1)) {
        if (!v.seeking && (looped || Math.abs(v.currentTime - t) > 0.1)) v.currentTime = t;
        if (leader.paused !== v.paused) leader.paused ? v.pause() : v.play().catch(() => {});
      }
    }
    if (videos.length) {
      const lead = videos[0];
      readout.textContent = `frame ${frameOf(lead) + 1} / ${frames(lead)}`;
      playButton.textContent = videos.some((v) => !v.paused) ? "Pause all" : "Play all";
    }
    requestAnimationFrame(tick);
  }
  requestAnimationFrame(tick);

  // A server without byte ranges (python -m http.server) leaves videos unseekable: load them into memory.
  function seekable(v) {
    if (v.src.startsWith("blob:") || (v.seekable.length && v.seekable.end(0) > 0)) return;
    fetch(v.src).then((r) => r.blob()).then((blob) => { v.src = URL.createObjectURL(blob); }).catch(() => {});
  }
  for (const v of videos) {
    if (v.readyState >= 1) seekable(v);
    else v.addEventListener("loadedmetadata", () => seekable(v), { once: true });
  }

  function pauseAll() { for (const v of videos) v.pause(); }
  function step(by) {
    if (!videos.length) return;
    pauseAll();
    const index = frameOf(videos[0]) + by;
    for (const v of videos) {
      const n = frames(v);
      v.currentTime = ((((index % n) + n) % n) + 0.5) / fps(v);
    }
  }
  if (playButton) {
    playButton.addEventListener("click", () => {
      if (videos.some((v) => !v.paused)) pauseAll();
      else for (const v of videos) v.play().catch(() => {});
    });
    document.getElementById("back").addEventListener("click", () => step(-1));
    document.getElementById("forward").addEventListener("click", () => step(1));
    document.getElementById("speed").addEventListener("change", (event) => {
      for (const v of videos) v.playbackRate = v.defaultPlaybackRate = Number(event.target.value);
    });
    document.addEventListener("keydown", (event) => {
      if (event.target.closest("select, button")) return;
      if (event.key === "ArrowLeft") step(-1);
      else if (event.key === "ArrowRight") step(1);
      else if (event.key === " ") { event.preventDefault(); playButton.click(); }
    });
  }

  function cellValue(row, index) {
    return row.cells[index].dataset.value;
  }
  function compare(a, b) {
    const missingA = a === "", missingB = b === "";
    if (missingA || missingB) return missingA - missingB;
    const x = Number(a), y = Number(b);
    if (!Number.isNaN(x) && !Number.isNaN(y)) return x < y ? -1 : x > y ? 1 : 0;
    return a.localeCompare(b, undefined, { numeric: true });
  }
  for (const table of document.querySelectorAll("table.sortable")) {
    const headers = [...table.tHead.rows[0].cells];
    headers.forEach((th, index) => th.addEventListener("click", () => {
      const ascending = th.getAttribute("aria-sort") !== "ascending";
      headers.forEach((h) => h.removeAttribute("aria-sort"));
      th.setAttribute("aria-sort", ascending ? "ascending" : "descending");
      const body = table.tBodies[0];
      const rows = [...body.rows];
      rows.sort((r, s) => {
        const a = cellValue(r, index), b = cellValue(s, index);
        if (a === "" || b === "") return compare(a, b);
        return ascending ? compare(a, b) : compare(b, a);
      });
      rows.forEach((row) => body.appendChild(row));
    }));
  }
})();
"""


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _finite(value: object) -> bool:
    return _is_number(value) and math.isfinite(value)


def _sort_key(value: object) -> tuple:
    if _is_number(value):
        return (0, value, "")
    return (1, 0, "" if value is None else str(value))


def _text(value: object) -> str:
    """A value as shown in a cell: numbers to four significant digits, missing as a dash."""
    if value is None or (_is_number(value) and math.isnan(value)):
        return "—"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _data_value(value: object) -> str:
    """A value as the sort script reads it: JavaScript's spelling of infinity, empty when missing."""
    if value is None or (_is_number(value) and math.isnan(value)):
        return ""
    if _is_number(value) and math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    return str(value)


def _image_name(source: str) -> str:
    return source.rstrip("/").rsplit("/", 1)[-1] or source


def _label(row: dict, swept: list[str]) -> str:
    return ", ".join(f"{param} {_text(row.get(param))}" for param in swept) or "default"


def _load(runs_dir: Path, name: str) -> tuple[dict, list[dict]]:
    """The experiment's record and every job row, or an error that says what to run."""
    store = Store(runs_dir)
    try:
        experiment = store.experiment(name)
        rows = store.results(name) if experiment else []
    finally:
        store.close()
    if experiment is None:
        raise SvdlabError(
            f"no experiment '{name}' in {runs_dir}; run `svdlab sweep SPEC` or check --runs-dir"
        )
    if not any(row["status"] == "done" for row in rows):
        raise SvdlabError(f"experiment '{name}' has no finished jobs yet; run `svdlab sweep SPEC` first")
    return experiment, rows


def _copy_videos(rows: list[dict], runs_dir: Path, videos_dir: Path) -> dict[str, str]:
    """Hard-link (or copy) each job's video into the report; map job key to its relative URL."""
    videos_dir.mkdir()
    sources: dict[str, str] = {}
    for row in rows:
        source = runs_dir / row["video"] if row.get("video") else None
        if source is None or not source.is_file():
            continue
        target = videos_dir / source.name
        if target.exists():
            target = videos_dir / f"{row['key']}-{source.name}"
        try:
            os.link(source, target)
        except OSError:
            shutil.copy2(source, target)
        sources[row["key"]] = f"videos/{quote(target.name)}"
    return sources


def read_manifests(rows: list[dict], runs_dir: Path) -> dict[str, dict]:
    """Each job's manifest (beside its video), by job key; jobs whose manifest cannot be read are left out."""
    found = {}
    for row in rows:
        if not row.get("video"):
            continue
        path = manifest_path(runs_dir / row["video"])
        try:
            found[row["key"]] = {**json.loads(path.read_text(encoding="utf-8")), "_folder": path.parent}
        except (OSError, ValueError):
            continue
    return found


def _fitted_input(manifest: dict):
    """The input image as the model saw it: the file the sweep saved, else the source fitted again (a local
    file only; never a download), else None."""
    image, params = manifest.get("image", {}), manifest.get("params", {})
    if image.get("fitted_file"):
        return manifest["_folder"] / image["fitted_file"]
    source = Path(str(image.get("source", "")))
    if not source.is_file() or not all(params.get(key) for key in ("width", "height", "fit")):
        return None
    try:
        return fit_image(load_image(source), params["width"], params["height"], params["fit"])
    except SvdlabError:
        return None


def _copy_inputs(manifests: dict[str, dict], inputs_dir: Path) -> dict[str, tuple[str, str]]:
    """Copy each job's fitted input image into the report; map job key to (relative URL, caption)."""
    inputs_dir.mkdir()
    inputs: dict[str, tuple[str, str]] = {}
    for key, manifest in manifests.items():
        params = manifest.get("params", {})
        shape = (params.get("width"), params.get("height"), params.get("fit"))
        pixels = manifest.get("image", {}).get("pixels_sha256", key)
        name = f"{pixels[:12]}-{shape[0]}x{shape[1]}-{shape[2]}.png"
        target = inputs_dir / name
        if not target.exists():
            fitted = _fitted_input(manifest)
            if fitted is None:
                continue
            if isinstance(fitted, Path):
                if not fitted.is_file():
                    continue
                shutil.copy2(fitted, target)
            else:
                fitted.save(target, format="PNG")
        inputs[key] = (f"inputs/{quote(name)}", f"input, {shape[2]} to {shape[0]}x{shape[1]}")
    return inputs


def _intro(experiment: dict, done: list[dict], swept: list[str], metrics: list[str]) -> str:
    """What was swept and what it does, which model made the videos, and what the metrics say."""
    model = experiment["model"]
    preset = PRESETS.get(model)
    about = f"{_e(preset.description)}. " if preset else ""
    caveat = f"<br><b>Caveat:</b> {_e(MODEL_CAVEATS[model])}" if model in MODEL_CAVEATS else ""
    items = [f"<dt>Model: {_e(model)}</dt><dd>{about}{caveat}</dd>"]
    for param in swept:
        values = ", ".join(_text(value) for value in dict.fromkeys(row.get(param) for row in done))
        note = PARAMETER_NOTES.get(param, "")
        items.append(f"<dt>Swept: {_e(param)} ({_e(values)})</dt><dd>{_e(note)}</dd>")
    fixed = experiment["spec"].get("fixed", {})
    if fixed:
        held = ", ".join(f"{key} {value}" for key, value in fixed.items())
        items.append(f"<dt>Held fixed</dt><dd>{_e(held)}; everything else at the model's defaults.</dd>")
    sentences = summary(done, swept, METRIC_UNITS)
    if sentences:
        items.append(
            "<dt>What changed (means over images)</dt>"
            + "".join(f"<dd>{_e(sentence)}</dd>" for sentence in sentences)
        )
    readings = "".join(
        f"<li><b>{_e(metric)}</b>: {_e(METRIC_NOTES[metric].meaning)} ({_e(direction(metric))})</li>"
        for metric in metrics
        if metric in METRIC_NOTES
    )
    legend = f"<details><summary>How to read the metrics</summary><ul>{readings}</ul></details>"
    return f'<dl class="intro">{"".join(items)}</dl>{legend if readings else ""}'


def _controls() -> str:
    """Buttons that drive every video at once: play or pause, a frame back or forward, and the speed."""
    options = "".join(f'<option value="{speed}">{speed:g}x</option>' for speed in SPEEDS)
    return (
        '<div class="controls" id="controls"><button type="button" id="play">Pause all</button>'
        '<button type="button" id="back" title="previous frame (left arrow)">&#9664; frame</button>'
        '<button type="button" id="forward" title="next frame (right arrow)">frame &#9654;</button>'
        f'<label>speed <select id="speed">{options}</select></label><span id="frame"></span>'
        "<span>(space: play/pause)</span></div>"
    )


def _header(experiment: dict, rows: list[dict]) -> str:
    done = sum(row["status"] == "done" for row in rows)
    failed = len(rows) - done
    spec = json.dumps(experiment["spec"], indent=2, ensure_ascii=False)
    return (
        f"<h1>{_e(experiment['name'])}</h1>"
        f"<p>Model <b>{_e(experiment['model'])}</b> &middot; {len(rows)} jobs: {done} done, {failed} failed"
        f" &middot; created {_e(experiment['created'])}, updated {_e(experiment['updated'])}</p>"
        f"<details><summary>Sweep spec</summary><pre>{_e(spec)}</pre></details>"
    )


def _grids(
    done: list[dict], swept: list[str], sources: dict[str, str], inputs: dict, manifests: dict[str, dict]
) -> str:
    parts = ["<h2>Videos</h2>", _controls()]
    for image in dict.fromkeys(row["image"] for row in done):
        rows = [row for row in done if row["image"] == image]
        figures = [
            f'<figure class="input"><img src="{_e(url)}" alt="{_e(caption)}"><figcaption>{_e(caption)}'
            "</figcaption></figure>"
            for url, caption in dict.fromkeys(inputs[row["key"]] for row in rows if row["key"] in inputs)
        ]
        for row in rows:
            label = f"{_label(row, swept)}, seed {row['seed']}"
            if row["key"] in sources:
                params = manifests.get(row["key"], {}).get("params", {})
                timing = "".join(
                    f' data-{name}="{_e(params[key])}"'
                    for name, key in (("fps", "fps"), ("frames", "num_frames"))
                    if key in params
                )
                media = (
                    f'<video class="job" src="{_e(sources[row["key"]])}" autoplay loop muted playsinline '
                    f'preload="auto" title="{_e(label)}"{timing}></video>'
                )
            else:
                media = f'<p class="missing">video missing: {_e(row.get("video"))}</p>'
            figures.append(f"<figure>{media}<figcaption>{_e(label)}</figcaption></figure>")
        parts.append(
            f'<h3 title="{_e(image)}">{_e(_image_name(image))}</h3><div class="grid">{"".join(figures)}</div>'
        )
    return "".join(parts)


def _table(done: list[dict], columns: list[str], metrics: list[str]) -> str:
    heads = ['<th class="text">image</th>'] + [f"<th>{_e(column)}</th>" for column in columns[1:]]
    heads += [
        f'<th title="{_e(METRIC_NOTES[metric].meaning if metric in METRIC_NOTES else metric)}">{_e(metric)}'
        f"<small>{_e(METRIC_UNITS[metric])}</small><small>{_e(direction(metric))}</small></th>"
        for metric in metrics
    ]
    body = []
    for row in done:
        cells = [
            f'<td class="text" data-value="{_e(row["image"])}" title="{_e(row["image"])}">'
            f"{_e(_image_name(row['image']))}</td>"
        ]
        for column in columns[1:] + metrics:
            value = row.get(column)
            text_class = "" if _is_number(value) or value is None else ' class="text"'
            cells.append(f'<td{text_class} data-value="{_e(_data_value(value))}">{_e(_text(value))}</td>')
        body.append(f"<tr>{''.join(cells)}</tr>")
    return (
        "<h2>Metrics</h2><p>Click a column header to sort; each says which direction is better.</p>"
        '<table class="sortable" id="metrics">'
        f"<thead><tr>{''.join(heads)}</tr></thead><tbody>{''.join(body)}</tbody></table>"
    )


def _failures(rows: list[dict], swept: list[str]) -> str:
    failed = [row for row in rows if row["status"] != "done"]
    if not failed:
        return ""
    items = "".join(
        f"<li>{_e(_image_name(row['image']))}, {_e(_label(row, swept))}: {_e(row.get('error'))}</li>"
        for row in failed
    )
    return f"<h2>Failed jobs</h2><ul>{items}</ul>"


def _ticks(low: float, high: float, count: int = 5) -> list[float]:
    """Round tick values covering [low, high]."""
    raw = (high - low) / max(count - 1, 1)
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    first = math.floor(low / step) * step
    ticks = []
    value = first
    while value < high + step * 0.5:
        ticks.append(round(value, 12))
        value += step
    return ticks


def _mean(values: list[float]) -> float | None:
    finite = [value for value in values if _finite(value)]
    return sum(finite) / len(finite) if finite else None


def _honest_range(low: float, high: float) -> tuple[float, float]:
    """A y range that shows the values as they are: from zero where zero is near, and at least a fifth of
    the largest value wide, so that a flat metric looks flat rather than like a trend."""
    if 0 <= low <= high - low:
        low = 0.0
    span = max(high - low, MIN_SPAN_SHARE * max(abs(low), abs(high))) or 1.0
    if high - low < span:
        middle = (low + high) / 2
        floor = 0.0 if low >= 0 else -math.inf
        low = max(floor, middle - span / 2)
        high = low + span
    return low, high


def _spread(series: dict[str, dict[float, float]], xs: list[float]) -> list[tuple[float, float, float]]:
    """(x, lowest, highest) over the series at each x that more than one series has."""
    bands = []
    for x in xs:
        values = [points[x] for points in series.values() if x in points]
        if len(values) > 1:
            bands.append((x, min(values), max(values)))
    return bands


def _plot_svg(metric: str, param: str, series: dict[str, dict[float, float]]) -> str:
    """A line plot of one metric against one parameter: a line per image and a thick mean line."""
    xs = sorted({x for points in series.values() for x in points})
    ys = [y for points in series.values() for y in points.values()]
    y_low, y_high = _honest_range(min(ys), max(ys))
    y_ticks = _ticks(y_low, y_high)
    y_low, y_high = min(y_ticks[0], y_low), max(y_ticks[-1], y_high)
    x_ticks = xs if len(xs) <= 8 else _ticks(xs[0], xs[-1])
    x_low, x_high = min(x_ticks[0], xs[0]), max(x_ticks[-1], xs[-1])
    inner_w, inner_h = PLOT_WIDTH - LEFT - RIGHT, PLOT_HEIGHT - TOP - BOTTOM

    def px(x: float) -> float:
        return LEFT + X_PAD + (x - x_low) / (x_high - x_low) * (inner_w - 2 * X_PAD)

    def py(y: float) -> float:
        return TOP + (y_high - y) / (y_high - y_low) * inner_h

    mean = {x: _mean([points.get(x) for points in series.values()]) for x in xs}
    lines = [(name, COLORS[i % len(COLORS)], 1.5, points) for i, (name, points) in enumerate(series.items())]
    lines.append(("mean", MEAN_COLOR, 3.5, {x: y for x, y in mean.items() if y is not None}))
    unit = METRIC_UNITS.get(metric, "")
    parts = [
        f'<svg class="plot" width="{PLOT_WIDTH + LEGEND_WIDTH}" '
        f'height="{max(PLOT_HEIGHT, TOP + 18 * len(lines))}" role="img" '
        f'data-metric="{_e(metric)}" data-param="{_e(param)}" '
        f'data-y-low="{y_low:g}" data-y-high="{y_high:g}">',
        f'<text x="{LEFT}" y="18" font-size="13" font-weight="bold">{_e(metric)} vs {_e(param)}</text>',
        f'<rect x="{LEFT}" y="{TOP}" width="{inner_w}" height="{inner_h}" fill="none" stroke="#999"/>',
    ]
    bands = _spread(series, xs)
    if len(bands) > 1:
        upper = [(px(x), py(high)) for x, _, high in bands]
        edge = upper + [(px(x), py(low)) for x, low, _ in reversed(bands)]
        points = " ".join(f"{x:.1f},{y:.1f}" for x, y in edge)
        parts.append(f'<polygon class="spread" points="{points}" fill="#888" fill-opacity="0.18"/>')
    for tick in y_ticks:
        y = py(tick)
        parts.append(f'<line x1="{LEFT}" x2="{LEFT + inner_w}" y1="{y:.1f}" y2="{y:.1f}" stroke="#eee"/>')
        parts.append(f'<text x="{LEFT - 4}" y="{y + 4:.1f}" text-anchor="end">{_e(f"{tick:.4g}")}</text>')
    for tick in x_ticks:
        x = px(tick)
        parts.append(
            f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{TOP + inner_h}" y2="{TOP + inner_h + 4}" stroke="#999"/>'
        )
        parts.append(
            f'<text x="{x:.1f}" y="{TOP + inner_h + 16}" text-anchor="middle">{_e(f"{tick:.4g}")}</text>'
        )
    parts.append(
        f'<text x="{LEFT + inner_w / 2}" y="{PLOT_HEIGHT - 6}" text-anchor="middle">{_e(param)}</text>'
        f'<text transform="translate(12 {TOP + inner_h / 2}) rotate(-90)" text-anchor="middle">'
        f"{_e(unit)}</text>"
    )
    for index, (name, color, width, points) in enumerate(lines):
        coords = [(px(x), py(y)) for x, y in sorted(points.items())]
        if len(coords) > 1:
            path = " ".join(f"{x:.1f},{y:.1f}" for x, y in coords)
            parts.append(f'<polyline points="{path}" fill="none" stroke="{color}" stroke-width="{width}"/>')
        for (x, y), (value_x, value_y) in zip(coords, sorted(points.items())):
            tip = f"{name}: {param} {value_x:.4g}, {metric} {value_y:.4g}"
            parts.append(
                f'<circle cx="{x:.1f}" cy="{y:.1f}" r="{width + 1}" fill="{color}">'
                f"<title>{_e(tip)}</title></circle>"
            )
        legend_y = TOP + 8 + 18 * index
        legend_x = PLOT_WIDTH + 6
        parts.append(
            f'<line x1="{legend_x}" x2="{legend_x + 20}" y1="{legend_y}" y2="{legend_y}" stroke="{color}" '
            f'stroke-width="{width}"/><text x="{legend_x + 26}" y="{legend_y + 4}">{_e(name[:20])}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def _plots(done: list[dict], swept: list[str], metrics: list[str]) -> str:
    """A plot per metric and numeric swept parameter with more than one value."""
    plots = []
    for param in swept:
        values = {row.get(param) for row in done}
        if len(values) < 2 or not all(_finite(value) for value in values):
            continue
        for metric in metrics:
            series: dict[str, dict[float, float]] = {}
            for image in dict.fromkeys(row["image"] for row in done):
                points = {}
                for x in sorted(values):
                    y = _mean([row.get(metric) for row in done if row["image"] == image and row[param] == x])
                    if y is not None:
                        points[x] = y
                if points:
                    series[_image_name(image)] = points
            if series:
                plots.append(_plot_svg(metric, param, series))
    if not plots:
        return ""
    return (
        "<h2>Plots</h2><p>Each line is one image (other swept parameters averaged); the thick line is the"
        " mean over images and the grey band their range. Axes start at zero where zero is near and span at"
        " least a fifth of the largest value, so a flat metric looks flat. Infinite and missing values are"
        " left out.</p>"
        f'<div class="plots">{"".join(plots)}</div>'
    )


def sections(experiment: dict, rows: list[dict]) -> tuple[list[str], list[dict], list[str]]:
    """The experiment's swept parameters, its finished rows in display order, and the metrics they have."""
    swept = [param for param in experiment["spec"].get("grid", {}) if any(param in row for row in rows)]
    done = sorted(
        (row for row in rows if row["status"] == "done"),
        key=lambda row: (row["image"], *(_sort_key(row.get(param)) for param in swept), row["seed"]),
    )
    metrics = [metric for metric in METRIC_UNITS if any(metric in row for row in done)]
    return swept, done, metrics


def plots_html(runs_dir: str | Path, name: str) -> str:
    """The report's plots of an experiment as an HTML fragment of inline SVG ("" when nothing varies)."""
    experiment, rows = _load(Path(runs_dir), name)
    swept, done, metrics = sections(experiment, rows)
    return _plots(done, swept, metrics)


def _page(experiment: dict, rows: list[dict], sources: dict[str, str], inputs: dict, manifests: dict) -> str:
    swept, done, metrics = sections(experiment, rows)
    columns = ["image", *swept, *(["seed"] if "seed" not in swept else [])]
    title = _e(f"{experiment['name']} - svdlab report")
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1"><link rel="icon" href="data:,">'
        f"<title>{title}</title><style>{CSS}</style></head><body>"
        f"{_header(experiment, rows)}{_intro(experiment, done, swept, metrics)}"
        f"{_grids(done, swept, sources, inputs, manifests)}{_table(done, columns, metrics)}"
        f"{_plots(done, swept, metrics)}{_failures(rows, swept)}"
        f"<script>{SCRIPT}</script></body></html>\n"
    )


def write_report(runs_dir: str | Path, name: str) -> Path:
    """Write the experiment's self-contained HTML report folder; return the path of its index.html."""
    runs_dir = Path(runs_dir)
    experiment, rows = _load(runs_dir, name)
    report_dir = runs_dir / name / "report"
    with atomic_path(report_dir) as temp:
        temp.mkdir()
        done = [row for row in rows if row["status"] == "done"]
        sources = _copy_videos(done, runs_dir, temp / "videos")
        manifests = read_manifests(done, runs_dir)
        inputs = _copy_inputs(manifests, temp / "inputs")
        page = _page(experiment, rows, sources, inputs, manifests)
        (temp / "index.html").write_text(page, encoding="utf-8")
    return report_dir / "index.html"
