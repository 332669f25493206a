"""Loading images from every source kind into plain RGB, with clear errors for bad input."""

from __future__ import annotations

import io
import re
import socket
import struct
import threading
import time
import warnings
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import PIL.Image
import pytest
import torch

from svdlab.errors import InvalidImageError
from svdlab.media import describe_source, load_image, source_stem

RED, GREEN, BLUE, WHITE = (255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 255)


def pixels(image: PIL.Image.Image) -> np.ndarray:
    assert image.mode == "RGB"
    return np.asarray(image)


def gradient(width: int = 16, height: int = 12) -> np.ndarray:
    """An (H, W, 3) uint8 picture whose every pixel differs: R by column, G by row, B fixed."""
    array = np.zeros((height, width, 3), np.uint8)
    array[..., 0] = np.arange(width, dtype=np.uint8)[None, :] * 15
    array[..., 1] = np.arange(height, dtype=np.uint8)[:, None] * 20
    array[..., 2] = 77
    return array


def png_bytes(image: PIL.Image.Image, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", **options)
    return buffer.getvalue()


# --- in-memory sources ---


def test_pil_rgb_is_copied_pixel_exact():
    source = PIL.Image.fromarray(gradient())
    image = load_image(source)
    assert image is not source
    np.testing.assert_array_equal(pixels(image), gradient())
    image.putpixel((0, 0), (1, 2, 3))
    assert source.getpixel((0, 0)) == (0, 0, 77)


def test_pil_rgba_is_composited_over_white():
    rgba = np.zeros((2, 3, 4), np.uint8)
    rgba[0, 0] = (255, 0, 0, 255)  # opaque red
    rgba[0, 1] = (0, 0, 255, 0)  # fully transparent blue
    rgba[0, 2] = (0, 0, 0, 128)  # half-transparent black
    rgba[1] = (0, 255, 0, 255)
    result = pixels(load_image(PIL.Image.fromarray(rgba)))
    assert tuple(result[0, 0]) == RED
    assert tuple(result[0, 1]) == WHITE
    assert np.all(np.abs(result[0, 2].astype(int) - 127) <= 1)
    assert tuple(result[1, 0]) == GREEN


def test_numpy_uint8_gray_rgb_rgba():
    rgb = gradient()
    np.testing.assert_array_equal(pixels(load_image(rgb)), rgb)
    gray = rgb[..., 0]
    np.testing.assert_array_equal(pixels(load_image(gray)), np.repeat(gray[..., None], 3, axis=2))
    rgba = np.concatenate([rgb, np.full((*rgb.shape[:2], 1), 255, np.uint8)], axis=2)
    rgba[0, 0, 3] = 0
    expected = rgb.copy()
    expected[0, 0] = WHITE
    np.testing.assert_array_equal(pixels(load_image(rgba)), expected)


def test_numpy_float_and_uint16_are_scaled():
    rgb = gradient()
    np.testing.assert_array_equal(pixels(load_image(rgb.astype(np.float64) / 255)), rgb)
    np.testing.assert_array_equal(pixels(load_image(rgb.astype(np.uint16) * 257)), rgb)
    np.testing.assert_array_equal(pixels(load_image(np.array([[0.5]], np.float32)))[0, 0], (128, 128, 128))


@pytest.mark.parametrize(
    ("array", "words"),
    [
        (np.zeros((4, 4, 3), np.int64), "unsupported pixel type int64"),
        (np.zeros((4, 4, 2), np.uint8), "HxW, HxWx3 or HxWx4"),
        (np.zeros((2, 4, 4, 3), np.uint8), "one image at a time"),
        (np.full((4, 4, 3), 255.0), "found 255..255"),
        (np.full((4, 4, 3), np.nan, np.float32), "must lie in [0, 1]"),
        (np.zeros((0, 4, 3), np.uint8), "empty"),
    ],
)
def test_numpy_bad_arrays_are_refused(array, words):
    with pytest.raises(InvalidImageError, match=r"^<array .*") as caught:
        load_image(array)
    assert words in str(caught.value)


def test_tensor_sources():
    rgb = gradient()
    chw = torch.from_numpy(rgb).permute(2, 0, 1)
    for tensor in (chw.float() / 255, chw.float()[None] / 255, chw, chw.to(torch.bfloat16) / 255):
        result = pixels(load_image(tensor))
        tolerance = 1 if tensor.dtype == torch.bfloat16 else 0
        assert np.abs(result.astype(int) - rgb).max() <= tolerance, tensor.dtype
    gray = torch.linspace(0, 1, 12)[None, None, :].expand(1, 3, 12)
    np.testing.assert_array_equal(pixels(load_image(gray))[..., 1], np.round(gray[0].numpy() * 255))
    rgba = torch.cat([chw, torch.zeros(1, 12, 16, dtype=torch.uint8)])
    assert np.all(pixels(load_image(rgba)) == 255)


def test_tensor_bad_shapes_are_refused():
    with pytest.raises(InvalidImageError, match=r"^<tensor 2x3x8x8 float32>: .*1xCxHxW"):
        load_image(torch.zeros(2, 3, 8, 8))
    with pytest.raises(InvalidImageError, match=r"^<tensor 8x8x3 float32>: "):
        load_image(torch.zeros(8, 8, 3))
    with pytest.raises(InvalidImageError, match=r"\[0, 1\], found -1\.\.1"):
        load_image(torch.linspace(-1, 1, 48).reshape(3, 4, 4))


def test_unsupported_source_type():
    with pytest.raises(InvalidImageError, match=r"^<int>: not an image source"):
        load_image(5)


# --- Pillow modes, through files ---


def test_grayscale_and_palette_files(tmp_path):
    gray = PIL.Image.fromarray(np.arange(256, dtype=np.uint8).reshape(16, 16))
    gray.save(tmp_path / "gray.png")
    np.testing.assert_array_equal(pixels(load_image(tmp_path / "gray.png"))[..., 2], np.asarray(gray))

    palette = PIL.Image.new("P", (2, 1))
    palette.putpalette([*RED, *BLUE])
    palette.putpixel((1, 0), 1)
    palette.save(tmp_path / "palette.png")
    assert [tuple(p) for p in pixels(load_image(tmp_path / "palette.png"))[0]] == [RED, BLUE]
    palette.save(tmp_path / "palette_transparent.png", transparency=1)
    assert [tuple(p) for p in pixels(load_image(tmp_path / "palette_transparent.png"))[0]] == [RED, WHITE]
    palette.save(tmp_path / "palette_transparent.gif", transparency=0)
    assert [tuple(p) for p in pixels(load_image(tmp_path / "palette_transparent.gif"))[0]] == [WHITE, BLUE]


def test_la_and_one_bit_modes():
    la = PIL.Image.fromarray(np.array([[[50, 255], [50, 0]]], np.uint8))
    assert la.mode == "LA"
    assert [tuple(p) for p in pixels(load_image(la))[0]] == [(50, 50, 50), WHITE]
    one_bit = PIL.Image.new("1", (2, 1))
    one_bit.putpixel((1, 0), 1)
    assert [tuple(p) for p in pixels(load_image(one_bit))[0]] == [(0, 0, 0), WHITE]


def test_sixteen_bit_ramp_maps_to_full_eight_bit_ramp(tmp_path):
    ramp = np.arange(65536, dtype=np.uint16).reshape(256, 256)
    PIL.Image.fromarray(ramp).save(tmp_path / "ramp16.png")
    with PIL.Image.open(tmp_path / "ramp16.png") as opened:
        assert opened.mode in ("I;16", "I")
    result = pixels(load_image(tmp_path / "ramp16.png"))[..., 0]
    np.testing.assert_array_equal(result, np.round(ramp / 257).astype(np.uint8))
    assert result.min() == 0 and result.max() == 255 and len(np.unique(result)) == 256
    as_int = PIL.Image.fromarray(ramp.astype(np.int32))
    assert as_int.mode == "I"
    np.testing.assert_array_equal(pixels(load_image(as_int))[..., 1], result)
    big_endian = PIL.Image.frombytes("I;16B", (256, 256), ramp.astype(">u2").tobytes())
    np.testing.assert_array_equal(pixels(load_image(big_endian))[..., 2], result)


def test_float_mode_reads_zero_to_one():
    values = np.array([[0.0, 0.25, 1.0]], np.float32)
    image = PIL.Image.fromarray(values)
    assert image.mode == "F"
    assert list(pixels(load_image(image))[0, :, 0]) == [0, 64, 255]


def test_cmyk_file(tmp_path):
    PIL.Image.new("CMYK", (3, 2), (0, 255, 255, 0)).save(tmp_path / "cmyk.tiff")
    assert np.all(pixels(load_image(tmp_path / "cmyk.tiff")) == RED)
    PIL.Image.new("CMYK", (3, 2), (0, 0, 0, 255)).save(tmp_path / "cmyk.jpg", quality=95)
    assert np.all(pixels(load_image(tmp_path / "cmyk.jpg")) <= 3)


def test_exif_orientation_is_applied(tmp_path):
    stored = np.zeros((20, 40, 3), np.uint8)
    stored[:, :20] = RED
    stored[:, 20:] = BLUE
    exif = PIL.Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    PIL.Image.fromarray(stored).save(tmp_path / "rotated.jpg", quality=95, exif=exif.tobytes())
    image = load_image(str(tmp_path / "rotated.jpg"))
    assert image.size == (20, 40)
    result = pixels(image).astype(int)
    assert np.abs(result[5, 10] - RED).max() < 10  # stored left half is now on top
    assert np.abs(result[35, 10] - BLUE).max() < 10


def test_animated_gif_gives_first_frame(tmp_path):
    frames = [PIL.Image.new("RGB", (4, 4), colour) for colour in (RED, BLUE)]
    frames[0].save(tmp_path / "anim.gif", save_all=True, append_images=frames[1:])
    assert np.all(pixels(load_image(tmp_path / "anim.gif")) == RED)


def test_loaded_file_is_detached(tmp_path):
    path = tmp_path / "detach.png"
    PIL.Image.fromarray(gradient()).save(path)
    image = load_image(path)
    path.unlink()
    np.testing.assert_array_equal(pixels(image), gradient())


# --- refusals ---


def huge_png(width: int, height: int) -> bytes:
    """A tiny PNG file whose header declares width x height pixels."""
    data = bytearray(png_bytes(PIL.Image.new("RGB", (1, 1))))
    header = bytes(data[12:16]) + struct.pack(">II", width, height) + bytes(data[24:29])
    data[16:24] = struct.pack(">II", width, height)
    data[29:33] = struct.pack(">I", zlib.crc32(header))
    return bytes(data)


@pytest.mark.parametrize("size", [(10_000, 10_000), (100_000, 100_000)])
def test_decompression_bomb_refused_before_decoding(tmp_path, size):
    path = tmp_path / "bomb.png"
    path.write_bytes(huge_png(*size))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(InvalidImageError, match=r"bomb\.png: the image is .*pixels.*downscale") as caught:
            load_image(path)
    assert "\n" not in str(caught.value)


def test_max_pixels_applies_to_every_source(tmp_path):
    PIL.Image.fromarray(gradient()).save(tmp_path / "small.png")
    for source in (tmp_path / "small.png", gradient(), PIL.Image.fromarray(gradient())):
        with pytest.raises(InvalidImageError, match=r"16x12 \(192 pixels\), over the limit of 100 pixels"):
            load_image(source, max_pixels=100)


def test_bad_files_name_the_source(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    Path("photo.txt").write_text("not a picture\n")
    message = r"^photo\.txt: not an image file \(cannot identify image format\); pass a PNG, JPEG or WebP"
    with pytest.raises(InvalidImageError, match=message):
        load_image("photo.txt")

    buffer = io.BytesIO()
    PIL.Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), np.uint8)).save(buffer, "JPEG")
    Path("cut.jpg").write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])
    with pytest.raises(InvalidImageError, match=r"^cut\.jpg: truncated or corrupt image"):
        load_image("cut.jpg")

    with pytest.raises(InvalidImageError, match=r"^missing\.png: no such file; check the path$"):
        load_image("missing.png")
    Path("folder").mkdir()
    with pytest.raises(InvalidImageError, match=r"^folder: is a directory"):
        load_image("folder")
    with pytest.raises(InvalidImageError, match=r"^empty image path"):
        load_image("")
    with pytest.raises(InvalidImageError, match=r"^ftp://host/a\.png: unsupported URL scheme"):
        load_image("ftp://host/a.png")


# --- URLs through a local server ---

PNG = png_bytes(PIL.Image.fromarray(gradient()))


class Handler(BaseHTTPRequestHandler):
    """/pic.png serves PNG; /big streams 64 KiB without a length; /slow answers after 2 s; /trickle sends
    headers and then one byte every half second (counted in TRICKLE_SENT); else 404."""

    protocol_version = "HTTP/1.0"

    def do_GET(self):  # noqa: N802 (http.server's name)
        try:
            if self.path == "/pic.png":
                self._send(200, PNG, length=True)
            elif self.path == "/big":
                self._send(200, b"\0" * 65536, length=False)
            elif self.path == "/slow":
                time.sleep(2)
                self._send(200, PNG, length=True)
            elif self.path == "/trickle":
                self._trickle()
            else:
                self._send(404, b"nope", length=True)
        except (BrokenPipeError, ConnectionResetError):
            pass

    def _send(self, status: int, body: bytes, length: bool) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "image/png")
        if length:
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _trickle(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "image/png")
        self.send_header("Content-Length", str(len(PNG)))
        self.end_headers()
        for byte in PNG:
            TRICKLE_SENT.append(byte)
            self.wfile.write(bytes([byte]))
            self.wfile.flush()
            time.sleep(0.5)

    def log_message(self, *args):
        pass


TRICKLE_SENT: list[int] = []


@pytest.fixture(scope="module")
def server():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture(autouse=True)
def no_proxy(monkeypatch):
    for name in ("http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")


def test_url_success(server):
    np.testing.assert_array_equal(pixels(load_image(f"{server}/pic.png")), gradient())


def test_url_http_error(server):
    with pytest.raises(InvalidImageError, match=r"/nothing\.png: HTTP 404 Not Found; check the URL$"):
        load_image(f"{server}/nothing.png")


def test_url_oversize_body_refused(server):
    with pytest.raises(InvalidImageError, match=r"/big: the download is over 1,000 bytes"):
        load_image(f"{server}/big", max_bytes=1000)
    limit = len(PNG) - 1
    with pytest.raises(InvalidImageError, match=rf"/pic\.png: the download is over {limit:,} bytes"):
        load_image(f"{server}/pic.png", max_bytes=limit)
    np.testing.assert_array_equal(pixels(load_image(f"{server}/pic.png", max_bytes=len(PNG))), gradient())


def test_url_timeout(server):
    start = time.monotonic()
    with pytest.raises(InvalidImageError, match=r"/slow: no complete answer within 0\.2 s"):
        load_image(f"{server}/slow", timeout=0.2)
    assert time.monotonic() - start < 1.5


def test_a_trickling_server_fails_at_the_total_time_limit_not_per_read(server):
    with pytest.raises(InvalidImageError, match=r"/trickle: no complete answer within 1\.5 s; check the URL"):
        load_image(f"{server}/trickle", timeout=1.5)
    assert len(TRICKLE_SENT) < len(PNG)  # it gave up while the server was still sending, not after the body


def test_url_unreachable():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}/x.png"
    with pytest.raises(InvalidImageError, match=rf"^{re.escape(url)}: cannot connect .*; check the URL"):
        load_image(url, timeout=2)


# --- names ---


def test_describe_source():
    assert describe_source("photos/cat.png") == "photos/cat.png"
    assert describe_source(Path("photos/cat.png")) == "photos/cat.png"
    assert describe_source("https://example.com/a/cat.jpg?x=1") == "https://example.com/a/cat.jpg?x=1"
    assert describe_source(PIL.Image.new("RGB", (64, 48))) == "<PIL image 64x48>"
    assert describe_source(np.zeros((48, 64, 3), np.uint8)) == "<array 48x64x3 uint8>"
    assert describe_source(torch.zeros(3, 48, 64)) == "<tensor 3x48x64 float32>"


def test_source_stem():
    assert source_stem("photos/cat.png") == "cat"
    assert source_stem(Path("/a/b/my photo (1).final.jpg")) == "my_photo_1_.final"
    assert source_stem("https://example.com/img/sunset%20beach.webp?size=large") == "sunset_beach"
    assert source_stem("https://example.com/") == "image"
    assert source_stem("café.png") == "cafe"
    assert source_stem("фото.png") == "image"
    assert source_stem(".hidden.png") == "hidden"
    assert source_stem("x" * 100 + ".png") == "x" * 64
    assert source_stem(PIL.Image.new("RGB", (4, 4))) == "image"
    assert source_stem(np.zeros((4, 4), np.uint8)) == "image"
    assert source_stem(torch.zeros(3, 4, 4)) == "image"
