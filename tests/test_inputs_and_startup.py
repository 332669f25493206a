"""Spec files that cannot be read, messages that say what is true, and a command line that starts without
loading torch."""

import io
import os
import re
import subprocess
import sys
import warnings

import PIL.Image
import pytest
from typer.testing import CliRunner

from svdlab import __version__
from svdlab.cli import app
from svdlab.errors import InvalidImageError, InvalidParameterError
from svdlab.experiments.spec import load_spec
from svdlab.media import load_image
from svdlab.params import make_params
from svdlab.training.config import load_train_config

SPEC = 'name = "{name}"\nimages = ["a.png"]\n'


def error_line(result) -> str:
    assert result.exit_code == 2 and isinstance(result.exception, SystemExit), result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output  # no usage box, no traceback
    return lines[0]


def test_spec_files_that_cannot_be_read_are_one_line(tmp_path):
    latin1 = tmp_path / "latin1.toml"
    latin1.write_bytes('name = "caf\u00e9"\nimages = ["a.png"]\n'.encode("latin-1"))
    folder = tmp_path / "folder.toml"
    folder.mkdir()
    unreadable = tmp_path / "unreadable.toml"
    unreadable.write_text(SPEC.format(name="x"))
    expected = {
        latin1: "not UTF-8 text (byte 11); save the sweep spec as UTF-8",
        folder: "is a directory, not a sweep spec",
        tmp_path / "missing.toml": "no such sweep spec",
    }
    for path, phrase in expected.items():
        line = error_line(CliRunner().invoke(app, ["sweep", str(path), "--runs-dir", str(tmp_path / "runs")]))
        assert line.startswith(f"error: {path}: {phrase}"), line
    with pytest.raises(InvalidParameterError, match="not UTF-8 text"):
        load_train_config(latin1)  # training configs share the reader


def test_a_spec_that_the_os_refuses_to_read_is_one_line(tmp_path, monkeypatch):
    from pathlib import Path

    spec = tmp_path / "spec.toml"
    spec.write_text(SPEC.format(name="x"))

    def refuse(self, *args, **kwargs):
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(Path, "read_text", refuse)
    with pytest.raises(
        InvalidParameterError, match=r"spec\.toml: cannot read the sweep spec \(Permission denied\)"
    ):
        load_spec(spec)


@pytest.mark.parametrize("name", ["svdlab.db", "svdlab.db-wal", "svdlab.db-shm", "SVDLAB.DB"])
def test_spec_names_that_clash_with_the_store_are_refused(tmp_path, name):
    spec = tmp_path / "spec.toml"
    spec.write_text(SPEC.format(name=name))
    with pytest.raises(
        InvalidParameterError,
        match=rf"spec\.toml: name='{re.escape(name)}' clashes with the store's own files",
    ):
        load_spec(spec)


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
def test_nan_and_infinity_are_named_not_finite(value):
    with pytest.raises(InvalidParameterError, match=r"noise_aug_strength=.* is not allowed: .*finite number"):
        make_params(noise_aug_strength=value)


def test_nan_on_the_command_line_is_named_not_finite(tmp_path):
    line = error_line(CliRunner().invoke(app, ["generate", "a.png", "--min-guidance", "nan", "--quiet"]))
    assert "min_guidance=nan is not allowed: input should be a finite number" in line


def png_with_bad_checksum(chunk: bytes) -> bytes:
    buffer = io.BytesIO()
    PIL.Image.new("RGB", (8, 8), (10, 20, 30)).save(buffer, "PNG")
    data = bytearray(buffer.getvalue())
    start = data.index(chunk)
    length = int.from_bytes(data[start - 4 : start], "big")
    data[start + 4 + length] ^= 0xFF  # the chunk's CRC
    return bytes(data)


@pytest.mark.parametrize("chunk", [b"IHDR", b"IDAT"])
def test_a_png_with_a_bad_checksum_is_called_corrupt(tmp_path, chunk):
    path = tmp_path / "bad.png"
    path.write_bytes(png_with_bad_checksum(chunk))
    with pytest.raises(InvalidImageError, match=r"^.*bad\.png: .*corrupt.*; re-export or re-download it$"):
        load_image(path)


def test_a_too_large_image_names_the_option_and_setting_that_raise_the_limit(tmp_path, monkeypatch):
    path = tmp_path / "wide.png"
    PIL.Image.new("RGB", (40, 30)).save(path)
    with pytest.raises(InvalidImageError, match=r"raise the limit with --max-pixels or SVDLAB_MAX_PIXELS=N"):
        load_image(path, max_pixels=1000)
    monkeypatch.setenv("SVDLAB_MAX_PIXELS", "1000")
    with pytest.raises(InvalidImageError, match=r"40x30 \(1,200 pixels\), over the limit of 1,000 pixels"):
        load_image(path)
    monkeypatch.setenv("SVDLAB_MAX_PIXELS", "1200")
    assert load_image(path).size == (40, 30)
    out = tmp_path / "out"
    line = error_line(
        CliRunner().invoke(app, ["generate", str(path), "--max-pixels", "100", "--out", str(out), "--quiet"])
    )
    assert "wide.png: the image is 40x30 (1,200 pixels), over the limit of 100 pixels" in line


def run_cli_and_list_heavy_imports(*args: str) -> tuple[str, list[str]]:
    """Run the CLI in a fresh interpreter; return its output and which heavy libraries it imported."""
    code = (
        "import sys\nfrom svdlab.cli import app\n"
        "try:\n    app(sys.argv[1:], prog_name='svdlab')\nexcept SystemExit:\n    pass\n"
        "heavy = ('torch', 'diffusers', 'transformers', 'numpy', 'PIL', 'av', 'cv2', 'wandb')\n"
        "print('IMPORTED', *[name for name in heavy if name in sys.modules])\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True,
        text=True,
        env={**os.environ, "COLUMNS": "100"},
    )
    output, _, imported = result.stdout.rpartition("IMPORTED")
    return output + result.stderr, imported.split()


@pytest.mark.parametrize("args", [["--help"], ["--version"], ["runs", "list", "--runs-dir", "RUNS"]])
def test_help_version_and_runs_list_start_without_heavy_imports(tmp_path, args):
    args = [str(tmp_path / "runs") if arg == "RUNS" else arg for arg in args]
    output, imported = run_cli_and_list_heavy_imports(*args)
    assert imported == [], output
    if args == ["--version"]:
        assert output.strip() == f"svdlab {__version__}"


def test_loading_a_model_folder_gives_no_torch_dtype_deprecation_warning():
    from svdlab.models import load_model

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        load_model("demo", device="cpu", dtype="float32")
    assert not [warning for warning in caught if "torch_dtype" in str(warning.message)]
