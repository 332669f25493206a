"""User text (file names, names in messages and tables) is printed literally by every command, never read
as rich markup, and never crashes the CLI."""

from types import SimpleNamespace

import pytest
from typer.testing import CliRunner

from svdlab.cli import app
from svdlab.experiments.store import Store
from svdlab.params import make_params
from tests.conftest import make_image

CLOSING = "a[/b]"  # rich reads it as a closing tag that matches nothing, and raised MarkupError
STYLED = "c[bold red]x"  # rich reads it as a style and swallowed the brackets

ARGUMENTS = {
    "generate": ["generate", f"{CLOSING}.png", "--quiet"],
    "sweep": ["sweep", f"{STYLED}.toml"],
    "train": ["train", f"{CLOSING}.toml"],
    "report": ["report", CLOSING],
    "runs show": ["runs", "show", CLOSING],
    "runs export": ["runs", "export", STYLED, "--csv", "x.csv"],
    "prepare-data": ["prepare-data", f"{CLOSING}.mp4", "--out", "data", "--quiet"],
    "relabel": ["relabel", STYLED],
    "lora merge": ["lora", "merge", "tiny-random", f"{CLOSING}.safetensors", "--out", "merged"],
}


@pytest.mark.parametrize("command", list(ARGUMENTS))
def test_markup_in_names_is_printed_literally_in_errors(tmp_path, monkeypatch, command):
    monkeypatch.chdir(tmp_path)
    args = ARGUMENTS[command]
    result = CliRunner().invoke(
        app, [*args, "--runs-dir", "runs"] if command in ("report", "runs show") else args
    )
    assert result.exit_code == 2 and isinstance(result.exception, SystemExit), result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    name = CLOSING if CLOSING in " ".join(args) else STYLED
    assert len(lines) == 1 and lines[0].startswith("error: ") and name in lines[0], result.output


def test_markup_in_names_is_printed_literally_in_results_warnings_and_tables(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    make_image(0).save(f"{STYLED}.png")
    result = CliRunner().invoke(
        app, ["generate", f"{STYLED}.png", "--steps", "2", "--fps", "40", "--out", CLOSING, "--quiet"]
    )
    assert result.exit_code == 0, result.output
    assert f"{STYLED}.png -> {CLOSING}/c_bold_red_x_demo_mb127_aug0.02_fps40_seed42_" in result.output
    assert "warning: fps=40 is outside 5..30" in result.output

    store = Store("runs")
    store.start_experiment("odd", {"grid": {}}, "tiny-random")
    job = SimpleNamespace(key="k1", source=f"{CLOSING}/{STYLED}.png", params=make_params(seed=1), swept={})
    manifest = {"model": {"name": "tiny-random"}, "timings": {}}
    store.record_done(
        "odd", job, manifest, {"path": "odd/v.mp4", "manifest": "odd/v.json", "sha256": "0"}, {}
    )
    shown = CliRunner().invoke(app, ["runs", "show", "odd", "--runs-dir", "runs"], env={"COLUMNS": "200"})
    assert shown.exit_code == 0 and f"{STYLED}.png" in shown.output, shown.output
