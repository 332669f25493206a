"""Input images: load any supported source into a plain RGB picture, and name it for messages and files.

Conversions: transparency (RGBA, LA, PA, palette or RGB/L with a transparent colour) is composited over
white; 16-bit pictures (Pillow modes I;16*, and mode I, which holds 16-bit PNG/TIFF data) and uint16
arrays map 0..65535 onto 0..255 with round(v / 257); float pictures (mode F, float arrays and tensors)
are read as 0..1 and scaled with round(v * 255). Animated files give their first frame.
"""

from __future__ import annotations

import io
import os
import re
import struct
import sys
import threading
import unicodedata
import warnings
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, BinaryIO
from urllib.parse import unquote, urlparse

import numpy as np
import PIL.Image
import PIL.ImageOps

from svdlab.errors import InvalidImageError, InvalidParameterError

if TYPE_CHECKING:
    import torch

DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, IndexError, struct.error)
SIXTEEN_BIT_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I")
TRANSPARENT_MODES = ("RGBA", "RGBa", "LA", "La", "PA")
FORMATS_HINT = "pass a PNG, JPEG or WebP file"
FLOAT_SLACK = 0.5 / 255
MAX_PIXELS = 64 * 2**20
MAX_PIXELS_VARIABLE = "SVDLAB_MAX_PIXELS"
RAISE_LIMIT_HINT = f"downscale it first or raise the limit with --max-pixels or {MAX_PIXELS_VARIABLE}=N"
SIGNATURES = {b"\x89PNG\r\n\x1a\n": "PNG", b"\xff\xd8\xff": "JPEG", b"GIF87a": "GIF", b"GIF89a": "GIF"}


def _is_url(source: object) -> bool:
    return isinstance(source, str) and source.lower().startswith(("http://", "https://"))


def _torch_tensor_type() -> type | None:
    torch = sys.modules.get("torch")
    return None if torch is None else torch.Tensor


def describe_source(source: object) -> str:
    """A short human name for an image source: the path or URL as given, or its kind, shape and type."""
    if isinstance(source, (str, os.PathLike)):
        return str(os.fspath(source))
    if isinstance(source, PIL.Image.Image):
        return f"<PIL image {source.width}x{source.height}>"
    if isinstance(source, np.ndarray):
        return f"<array {'x'.join(map(str, source.shape))} {source.dtype}>"
    tensor = _torch_tensor_type()
    if tensor is not None and isinstance(source, tensor):
        return f"<tensor {'x'.join(map(str, source.shape))} {str(source.dtype).removeprefix('torch.')}>"
    return f"<{type(source).__name__}>"


def source_stem(source: object) -> str:
    """A filesystem-safe stem (letters, digits, '.', '_', '-'; at most 64) naming the source in outputs."""
    if _is_url(source):
        raw = PurePosixPath(unquote(urlparse(source).path)).stem
    elif isinstance(source, (str, os.PathLike)):
        raw = Path(source).stem
    else:
        raw = ""
    ascii_only = unicodedata.normalize("NFKD", raw).encode("ascii", "ignore").decode()
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", ascii_only).strip("._-")
    return safe[:64].rstrip("._-") or "image"


def load_image(
    source: object,
    *,
    timeout: float = 20.0,
    max_bytes: int = 50 * 2**20,
    max_pixels: int | None = None,
) -> PIL.Image.Image:
    """Load a path, http(s) URL, PIL image, numpy array or torch tensor as a new RGB PIL image.

    A URL's whole download must finish within `timeout` seconds and `max_bytes`; a picture over
    `max_pixels` (default: the SVDLAB_MAX_PIXELS environment variable, else 64 Mi) is refused before its
    pixels are decoded.
    """
    name = describe_source(source)
    max_pixels = max_pixels or default_max_pixels()
    tensor = _torch_tensor_type()
    if _is_url(source):
        return _decode(io.BytesIO(_fetch(source, timeout, max_bytes)), name, max_pixels)
    if isinstance(source, (str, os.PathLike)):
        return _load_file(source, name, max_pixels)
    if isinstance(source, PIL.Image.Image):
        _check_size(source.size, name, max_pixels)
        try:
            return _to_rgb(PIL.ImageOps.exif_transpose(source), name)
        except DECODE_ERRORS as error:
            raise InvalidImageError(f"{name}: cannot read the image ({_one_line(error)})") from error
    if isinstance(source, np.ndarray):
        return _from_array(source, name, max_pixels)
    if tensor is not None and isinstance(source, tensor):
        return _from_array(_tensor_to_array(source, name), name, max_pixels)
    raise InvalidImageError(
        f"{name}: not an image source; pass a file path, an http(s) URL, a PIL image, a numpy array "
        "or a torch tensor"
    )


def decode_image(data: bytes, name: str, max_pixels: int | None = None) -> PIL.Image.Image:
    """Image bytes (an upload) as a new RGB PIL image, checked as load_image checks a file; `name` is how
    errors call it."""
    return _decode(io.BytesIO(data), name, max_pixels or default_max_pixels())


def default_max_pixels() -> int:
    """The largest picture (in pixels) loaded by default: SVDLAB_MAX_PIXELS if set, else 64 Mi."""
    text = os.environ.get(MAX_PIXELS_VARIABLE, "").strip()
    if not text:
        return MAX_PIXELS
    if not text.isdigit() or int(text) < 1:
        raise InvalidParameterError(
            f"{MAX_PIXELS_VARIABLE}={text!r} is not allowed: use a whole number of pixels above 0"
        )
    return int(text)


def _one_line(error: BaseException) -> str:
    text = " ".join(str(error).split())
    return text or type(error).__name__


def _check_size(size: tuple[int, int], name: str, max_pixels: int) -> None:
    width, height = size
    if width < 1 or height < 1:
        raise InvalidImageError(f"{name}: the image is empty ({width}x{height}); pass a picture with pixels")
    if width * height > max_pixels:
        raise InvalidImageError(
            f"{name}: the image is {width}x{height} ({width * height:,} pixels), over the limit of "
            f"{max_pixels:,} pixels; {RAISE_LIMIT_HINT}"
        )


def _load_file(source: str | os.PathLike, name: str, max_pixels: int) -> PIL.Image.Image:
    if not str(source).strip():
        raise InvalidImageError("empty image path; pass an image file path or an http(s) URL")
    if isinstance(source, str) and re.match(r"^[A-Za-z][A-Za-z0-9+.-]+://", source):
        raise InvalidImageError(f"{name}: unsupported URL scheme; use an http(s) URL or a local file path")
    path = Path(source).expanduser()
    if path.is_dir():
        raise InvalidImageError(f"{name}: is a directory, not an image file; pass an image file inside it")
    try:
        with open(path, "rb") as file:
            return _decode(file, name, max_pixels)
    except FileNotFoundError as error:
        raise InvalidImageError(f"{name}: no such file; check the path") from error
    except PermissionError as error:
        raise InvalidImageError(f"{name}: permission denied; make the file readable") from error
    except IsADirectoryError as error:
        raise InvalidImageError(f"{name}: is a directory, not an image file; pass an image file") from error
    except OSError as error:
        raise InvalidImageError(f"{name}: cannot read ({_one_line(error)}); check the path") from error


def _fetch(url: str, timeout: float, max_bytes: int) -> bytes:
    """A URL's body; refuses a download that has not finished `timeout` seconds after it began (however
    the server trickles its bytes) and bodies over `max_bytes`."""
    outcome: dict[str, object] = {}
    cancelled = threading.Event()
    worker = threading.Thread(
        target=_download, args=(url, timeout, max_bytes, cancelled, outcome), daemon=True
    )
    worker.start()
    worker.join(timeout)
    if worker.is_alive():
        cancelled.set()  # the worker stops at its next read and closes the connection
        raise _too_slow(url, timeout)
    if "error" in outcome:
        raise outcome["error"]  # type: ignore[misc]
    return outcome["body"]  # type: ignore[return-value]


def _too_slow(url: str, timeout: float) -> InvalidImageError:
    return InvalidImageError(f"{url}: no complete answer within {timeout:g} s; check the URL or retry")


def _download(url: str, timeout: float, max_bytes: int, cancelled: threading.Event, outcome: dict) -> None:
    """Read the URL's body into outcome['body'] (or the error into outcome['error']) until cancelled."""
    import requests
    from urllib3.exceptions import HTTPError, ReadTimeoutError

    too_big = InvalidImageError(f"{url}: the download is over {max_bytes:,} bytes; use a smaller image")
    try:
        with requests.get(url, stream=True, timeout=timeout) as response:
            if response.status_code >= 400:
                status = f"HTTP {response.status_code} {response.reason}"
                raise InvalidImageError(f"{url}: {status}; check the URL")
            length = response.headers.get("Content-Length", "")
            if length.isdigit() and int(length) > max_bytes:
                raise too_big
            body = bytearray()
            while not cancelled.is_set():
                chunk = response.raw.read1(64 * 1024, decode_content=True)  # what has arrived, not 64 KiB
                if not chunk:
                    break
                body += chunk
                if len(body) > max_bytes:
                    raise too_big
            outcome["body"] = bytes(body)
    except InvalidImageError as error:
        outcome["error"] = error
    except (requests.Timeout, ReadTimeoutError):
        outcome["error"] = _too_slow(url, timeout)
    except requests.ConnectionError as error:
        if error.args and isinstance(error.args[0], ReadTimeoutError):
            outcome["error"] = _too_slow(url, timeout)
        else:
            reason = _one_line(error)
            outcome["error"] = InvalidImageError(
                f"{url}: cannot connect ({reason}); check the URL and the network"
            )
    except (requests.RequestException, HTTPError, OSError) as error:
        outcome["error"] = InvalidImageError(f"{url}: cannot fetch ({_one_line(error)}); check the URL")


def _decode(file: BinaryIO, name: str, max_pixels: int) -> PIL.Image.Image:
    """Decode an open binary file: refuse oversize pictures before reading pixels, check a PNG's chunk
    checksums (which decoding skips), then convert to RGB."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PIL.Image.DecompressionBombWarning)
        try:
            with PIL.Image.open(file) as image:
                _check_size(image.size, name, max_pixels)
                if image.format == "PNG":
                    image.verify()
            file.seek(0)
            with PIL.Image.open(file) as image:
                image.load()
                return _to_rgb(PIL.ImageOps.exif_transpose(image), name)
        except PIL.Image.DecompressionBombError as error:
            raise InvalidImageError(
                f"{name}: the image is over Pillow's limit of {2 * PIL.Image.MAX_IMAGE_PIXELS:,} pixels; "
                "downscale it first"
            ) from error
        except PIL.UnidentifiedImageError as error:
            file.seek(0)
            kind = _signature(file.read(12))
            if kind is not None:
                raise InvalidImageError(
                    f"{name}: corrupt {kind} file (its header cannot be decoded); re-export or re-download it"
                ) from error
            raise InvalidImageError(
                f"{name}: not an image file (cannot identify image format); {FORMATS_HINT}"
            ) from error
        except DECODE_ERRORS as error:
            raise InvalidImageError(
                f"{name}: truncated or corrupt image ({_one_line(error)}); re-export or re-download it"
            ) from error


def _signature(head: bytes) -> str | None:
    """The image format whose magic bytes start `head`, if any."""
    if head.startswith(b"RIFF") and head[8:12] == b"WEBP":
        return "WebP"
    return next((kind for magic, kind in SIGNATURES.items() if head.startswith(magic)), None)


def _over_white(image: PIL.Image.Image) -> PIL.Image.Image:
    rgba = image.convert("RGBA")
    background = PIL.Image.new("RGB", rgba.size, (255, 255, 255))
    background.paste(rgba, mask=rgba.getchannel("A"))
    return background


def _to_rgb(image: PIL.Image.Image, name: str) -> PIL.Image.Image:
    """A new RGB image from any Pillow mode (see the module docstring for the rules)."""
    if image.mode in TRANSPARENT_MODES or "transparency" in image.info:
        return _over_white(image)
    if image.mode in SIXTEEN_BIT_MODES:
        sixteen_bit = np.clip(np.asarray(image), 0, 65535).astype(np.uint16)
        return _from_array(sixteen_bit, name, max_pixels=image.width * image.height)
    if image.mode == "F":
        return _from_array(np.asarray(image), name, max_pixels=image.width * image.height)
    if image.mode == "RGB":
        return image.copy()
    try:
        return image.convert("RGB")
    except ValueError as error:
        raise InvalidImageError(
            f"{name}: colour mode {image.mode} cannot be converted to RGB; save the image as 8-bit RGB"
        ) from error


def _tensor_to_array(tensor: torch.Tensor, name: str) -> np.ndarray:
    """A (H, W, C) numpy array from a (C, H, W) or (1, C, H, W) tensor."""
    shape = tuple(tensor.shape)
    if len(shape) == 4 and shape[0] == 1:
        tensor = tensor[0]
    if tensor.ndim != 3 or tensor.shape[0] not in (1, 3, 4):
        raise InvalidImageError(
            f"{name}: a tensor image must be CxHxW or 1xCxHxW with C = 1, 3 or 4; pass one image at a time"
        )
    tensor = tensor.detach().cpu()
    if tensor.is_floating_point():
        tensor = tensor.float()
    return tensor.permute(1, 2, 0).numpy()


def _from_array(array: np.ndarray, name: str, max_pixels: int) -> PIL.Image.Image:
    """A new RGB image from an HxW, HxWx1, HxWx3 or HxWx4 uint8, uint16 or float (0..1) array."""
    if array.ndim == 3 and array.shape[2] in (1, 3, 4):
        channels = array.shape[2]
    elif array.ndim == 2:
        channels = 1
    else:
        raise InvalidImageError(
            f"{name}: an array image must be HxW, HxWx3 or HxWx4; pass one image at a time"
        )
    _check_size((array.shape[1], array.shape[0]), name, max_pixels)
    if array.dtype.kind == "u" and array.dtype.itemsize == 1:
        pixels = array
    elif array.dtype.kind == "u" and array.dtype.itemsize == 2:
        pixels = np.round(array / 257.0).astype(np.uint8)
    elif np.issubdtype(array.dtype, np.floating):
        low, high = float(np.min(array)), float(np.max(array))
        if not (np.isfinite(low) and np.isfinite(high)) or low < -FLOAT_SLACK or high > 1 + FLOAT_SLACK:
            raise InvalidImageError(
                f"{name}: float pixel values must lie in [0, 1], found {low:g}..{high:g}; "
                "scale the values (e.g. divide 0..255 data by 255)"
            )
        pixels = np.round(np.clip(array.astype(np.float32), 0, 1) * np.float32(255)).astype(np.uint8)
    else:
        raise InvalidImageError(
            f"{name}: unsupported pixel type {array.dtype}; "
            "pass uint8 (0..255), uint16 (0..65535) or float (0..1) values"
        )
    pixels = np.ascontiguousarray(pixels.reshape(array.shape[0], array.shape[1], channels))
    if channels == 1:
        return PIL.Image.fromarray(pixels[:, :, 0]).convert("RGB")
    if channels == 4:
        return _over_white(PIL.Image.fromarray(pixels))
    return PIL.Image.fromarray(pixels)
