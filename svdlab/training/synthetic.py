"""Synthetic motion data: videos of moving sprites whose true motion is known exactly.

A scene is a textured background with 1 to 4 sprites (circles, ellipses, rectangles, triangles,
pentagons, hexagons) in solid colours or simple textures. Each sprite moves in a straight line at its own
speed (px/frame, relative to the background) and direction; later sprites are drawn over earlier ones,
so they occlude each other. An optional camera pan shifts background and sprites together by `pan`
(dx, dy) px/frame on screen. Frames are drawn at `supersample` times the size and shrunk with area
averaging, so sub-pixel motion renders smoothly (positions are exact to 1/supersample px). `SceneRanges`
sets how many sprites, how big, how fast, in which directions, how often the camera pans and how fast,
how many scenes are still and how much fine detail the background has.

Directions are degrees on screen with y pointing down: 0 moves right, 90 moves down. `true_motion` is
the mean true displacement in px/frame over all pixels of frames 0..T-2 (each pixel moves with the
background or with the top sprite covering it), the quantity `svdlab.metrics.motion.motion_score`
estimates from the pixels alone.

Videos are written as lossless RGB H.264 (libx264rgb, crf 0): PyAV, ffmpeg and VLC decode the exact
frames back; browsers do not play them (use `svdlab.media.write_video` for viewing copies).
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np

from svdlab.errors import InvalidParameterError, OutputError
from svdlab.media import atomic_path, frames_to_uint8, write_json_atomic

SHAPES = ("circle", "ellipse", "rectangle", "triangle", "pentagon", "hexagon")
FILLS = ("solid", "stripes", "checker", "noise")
BACKGROUNDS = ("noise", "stripes", "checker", "gradient")
MAX_SPEED = 0.12
MAX_PAN = 0.06
PAN_PROBABILITY = 0.4
STILL_PROBABILITY = 0.1
SUPERSAMPLE = 4


@dataclass(frozen=True)
class SceneRanges:
    """What random scenes draw from: up to `max_sprites` sprites filled with one of `fills` over a
    background of one of `backgrounds`, speeds up to a fraction of the width per frame, pans from
    `min_pan` to `max_pan` of it, a still scene (nothing moves) in `still_probability` of the scenes and a
    pan in `pan_probability` of the others, the directions (degrees, low to high) that sprites and pans
    move in, the sprites' radii (fractions of the shorter side, low to high) and the strength of the
    background's fine detail (levels, low to high)."""

    max_sprites: int = 4
    max_speed: float = MAX_SPEED
    max_pan: float = MAX_PAN
    min_pan: float = 0.0
    pan_probability: float = PAN_PROBABILITY
    still_probability: float = STILL_PROBABILITY
    fills: tuple[str, ...] = FILLS
    backgrounds: tuple[str, ...] = BACKGROUNDS
    directions: tuple[float, float] = (0.0, 360.0)
    sizes: tuple[float, float] = (0.1, 0.25)
    detail: tuple[float, float] = (25.0, 45.0)

    def __post_init__(self) -> None:
        if self.max_sprites < 1:
            raise InvalidParameterError(f"max_sprites={self.max_sprites} is not allowed: use 1 or more")
        for name in ("max_speed", "max_pan", "min_pan"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise InvalidParameterError(f"{name}={value} is not allowed: use widths per frame, 0 or more")
        if self.min_pan > self.max_pan:
            raise InvalidParameterError(
                f"min_pan={self.min_pan:g} is above max_pan={self.max_pan:g}: lower min_pan or raise max_pan"
            )
        for name, kinds in (("fills", FILLS), ("backgrounds", BACKGROUNDS)):
            chosen = getattr(self, name)
            if not chosen or not set(chosen) <= set(kinds):
                raise InvalidParameterError(f"{name}={chosen} is not allowed: choose from {', '.join(kinds)}")
        low, high = self.directions
        if not (math.isfinite(low) and math.isfinite(high) and low <= high <= low + 360):
            raise InvalidParameterError(
                f"directions={low:g}:{high:g} is not allowed: use LOW:HIGH degrees, at most 360 apart"
            )
        small, large = self.sizes
        if not (math.isfinite(small) and math.isfinite(large) and 0 < small <= large <= 0.5):
            raise InvalidParameterError(
                f"sizes={small:g}:{large:g} is not allowed: use LOW:HIGH radii, shares of the shorter "
                "side above 0 and at most 0.5"
            )
        faint, strong = self.detail
        if not (math.isfinite(faint) and math.isfinite(strong) and 0 <= faint <= strong <= 100):
            raise InvalidParameterError(
                f"detail={faint:g}:{strong:g} is not allowed: use LOW:HIGH levels from 0 to 100"
            )
        for name in ("pan_probability", "still_probability"):
            if not 0 <= getattr(self, name) <= 1:
                raise InvalidParameterError(
                    f"{name}={getattr(self, name)} is not allowed: use a probability from 0 to 1"
                )


# The world the demo model moves (its second to fourth training runs, retrain-demo.sh): a camera panning
# rightward at 0.005 to 0.03 widths a frame over a still scene with one sprite of a narrow range of sizes,
# so that the image, the fps and the motion bucket fix the motion. Every scene pans (no still scenes), so
# even the lowest buckets move the textured background by a visible amount. No checkered backgrounds: the
# demo's autoencoder (4x smaller latents) blurs their sharp edges, so frame 0 could not stay faithful to
# the input (its round trip of them scores 20-24 dB). Its held-out scenes in tests and benchmarks come from
# here.
DEMO_SCENES = SceneRanges(
    max_sprites=1,
    max_speed=0.0,
    min_pan=0.005,
    max_pan=0.03,
    pan_probability=1.0,
    still_probability=0.0,
    directions=(0.0, 0.0),
    sizes=(0.16, 0.22),
    backgrounds=("noise", "stripes", "gradient"),
)


@dataclass
class SpriteClip:
    """Frames of one synthetic scene with the true motion of everything in it; `labels` (F, H, W) uint8
    says which sprite each pixel shows (0 the background, i + 1 the i-th sprite)."""

    frames: np.ndarray
    fps: float
    seed: int
    shapes: list[str]
    speeds: list[float]
    directions: list[float]
    pan: tuple[float, float]
    true_motion: float
    labels: np.ndarray

    def truth(self) -> dict:
        """The scene's true motion as a JSON-ready record."""
        return {
            "seed": self.seed,
            "fps": self.fps,
            "shapes": self.shapes,
            "speeds": self.speeds,
            "directions": self.directions,
            "pan": list(self.pan),
            "true_motion": self.true_motion,
        }


@dataclass
class _Sprite:
    """A sprite drawn at supersampled scale: its pixels, its shape mask and its motion on screen."""

    patch: np.ndarray
    mask: np.ndarray
    centre: tuple[float, float]
    velocity: tuple[float, float]


def render_sprite_clip(
    seed: int,
    *,
    width: int = 64,
    height: int = 64,
    frames: int = 8,
    fps: float = 8,
    speed: float | None = None,
    direction: float | None = None,
    pan: tuple[float, float] | None = None,
    sprites: int | None = None,
    ranges: SceneRanges = SceneRanges(),
    supersample: int = SUPERSAMPLE,
) -> SpriteClip:
    """Render one sprite scene; None draws a value at random (deterministic per seed)."""
    _check_shape(width, height, frames, supersample)
    if sprites is not None and sprites < 0:
        raise InvalidParameterError(f"sprites={sprites} is not allowed: use 0 or more")
    if speed is not None and not (math.isfinite(speed) and speed >= 0):
        raise InvalidParameterError(f"speed={speed} is not allowed: use a speed of 0 px/frame or more")
    rng = np.random.default_rng(seed)
    still = rng.random() < ranges.still_probability
    pan = _pan(rng, width, still, ranges) if pan is None else (float(pan[0]), float(pan[1]))
    count = int(rng.integers(1, ranges.max_sprites + 1)) if sprites is None else sprites
    scale = min(width, height)
    speeds = [_speed(rng, width, still, ranges) if speed is None else float(speed) for _ in range(count)]
    directions = [
        float(rng.uniform(*ranges.directions)) if direction is None else float(direction) for _ in speeds
    ]
    shapes = [str(rng.choice(SHAPES)) for _ in speeds]
    drawn = [
        _make_sprite(rng, shape, value, angle, pan, width, height, frames, scale, supersample, ranges)
        for shape, value, angle in zip(shapes, speeds, directions)
    ]
    background = _background(rng, width, height, frames, pan, supersample, ranges)
    pixels, labels, true_motion = _render(background, drawn, pan, width, height, frames, supersample)
    return SpriteClip(pixels, fps, seed, shapes, speeds, directions, pan, true_motion, labels)


def moving_sprite_clips(count: int, frames: int, first_seed: int) -> list[np.ndarray]:
    """The frames (F, 64, 64, 3) of the first `count` sprite videos from `first_seed` on whose first and last
    frames differ (a still clip measures nothing about motion)."""
    clips, seed = [], first_seed
    while len(clips) < count:
        clip = render_sprite_clip(seed, frames=frames).frames
        if np.any(clip[0] != clip[-1]):
            clips.append(clip)
        seed += 1
    return clips


def write_synthetic_videos(
    out_dir: str | os.PathLike,
    count: int,
    *,
    width: int = 64,
    height: int = 64,
    frames: int = 16,
    fps: float = 8,
    seed: int = 0,
    speed: float | None = None,
    pan: tuple[float, float] | None = None,
    sprites: int | None = None,
    ranges: SceneRanges = SceneRanges(),
    on_video: Callable[[dict], None] | None = None,
) -> list[dict]:
    """Write `count` scenes as lossless MP4s (seeds seed, seed+1, ...) and truth.json; return its records."""
    if count < 1:
        raise InvalidParameterError(f"count={count} is not allowed: write 1 video or more")
    out = Path(out_dir)
    digits = max(4, len(str(count - 1)))
    records = []
    for index in range(count):
        clip = render_sprite_clip(
            seed + index,
            width=width,
            height=height,
            frames=frames,
            fps=fps,
            speed=speed,
            pan=pan,
            sprites=sprites,
            ranges=ranges,
        )
        name = f"synth_{index:0{digits}d}.mp4"
        write_lossless_mp4(clip.frames, out / name, fps)
        records.append({"file": name, **clip.truth()})
        if on_video:
            on_video(records[-1])
    truth = {"width": width, "height": height, "ranges": asdict(ranges), "videos": records}
    write_json_atomic(out / "truth.json", truth)
    return records


def write_lossless_mp4(frames: np.ndarray, path: str | os.PathLike, fps: float) -> Path:
    """Write (T, H, W, 3) uint8 RGB frames as lossless RGB H.264 (libx264rgb, crf 0), atomically."""
    import av

    if not (math.isfinite(fps) and fps > 0):
        raise InvalidParameterError(f"fps={fps} is not allowed: use a frame rate above 0")
    pixels, target = frames_to_uint8(frames), Path(path)
    try:
        with atomic_path(target) as temp, av.open(str(temp), mode="w", format="mp4") as output:
            stream = output.add_stream(
                "libx264rgb", rate=Fraction(fps).limit_denominator(1001), options={"crf": "0"}
            )
            stream.width, stream.height, stream.pix_fmt = pixels.shape[2], pixels.shape[1], "bgr24"
            for index, frame in enumerate(pixels):
                video_frame = av.VideoFrame.from_ndarray(frame, format="rgb24")
                video_frame.pts = index
                output.mux(stream.encode(video_frame))
            output.mux(stream.encode(None))
    except (OSError, av.FFmpegError) as error:
        raise OutputError(f"{target}: cannot write ({error}); choose a writable output folder") from None
    return target


def _check_shape(width: int, height: int, frames: int, supersample: int) -> None:
    """Refuse sizes the renderer cannot draw."""
    if width < 8 or height < 8:
        raise InvalidParameterError(f"size {width}x{height} is not allowed: use sides of 8 pixels or more")
    if frames < 1:
        raise InvalidParameterError(f"frames={frames} is not allowed: use 1 frame or more")
    if supersample < 1:
        raise InvalidParameterError(f"supersample={supersample} is not allowed: use 1 or more")


def _speed(rng: np.random.Generator, width: int, still: bool, ranges: SceneRanges) -> float:
    """A sprite speed in px/frame: 0 for a still scene, else uniform up to max_speed of the width."""
    return 0.0 if still else float(rng.uniform(0, ranges.max_speed * width))


def _pan(rng: np.random.Generator, width: int, still: bool, ranges: SceneRanges) -> tuple[float, float]:
    """A camera pan (dx, dy) in px/frame: none for most scenes, else min_pan to max_pan of the width."""
    if still or rng.random() >= ranges.pan_probability:
        return (0.0, 0.0)
    low, high = (math.radians(value) for value in ranges.directions)
    size, angle = rng.uniform(ranges.min_pan * width, ranges.max_pan * width), rng.uniform(low, high)
    return (float(size * math.cos(angle)), float(size * math.sin(angle)))


def _colour(rng: np.random.Generator) -> np.ndarray:
    """A random saturated-ish RGB colour as float32."""
    hsv = np.array([[[rng.uniform(0, 180), rng.uniform(80, 255), rng.uniform(70, 255)]]], np.float32)
    return cv2.cvtColor(hsv.astype(np.uint8), cv2.COLOR_HSV2RGB)[0, 0].astype(np.float32)


def _smooth_noise(rng: np.random.Generator, height: int, width: int, blur: float) -> np.ndarray:
    """(H, W) float32 noise in about [-1, 1], blurred over `blur` px so flow is well defined."""
    noise = cv2.GaussianBlur(rng.standard_normal((height, width)).astype(np.float32), (0, 0), blur)
    return noise / (noise.std() * 2 + 1e-6)


def _pattern(rng: np.random.Generator, kind: str, height: int, width: int, period: float) -> np.ndarray:
    """(H, W) float32 weights in [0, 1] for blending two colours: stripes, checker or smooth noise."""
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    angle = rng.uniform(0, math.pi)
    if kind == "stripes":
        phase = (xs * math.cos(angle) + ys * math.sin(angle)) * (2 * math.pi / period)
        return 0.5 + 0.5 * np.sin(phase)
    if kind == "checker":
        return ((np.floor(xs / period) + np.floor(ys / period)) % 2).astype(np.float32)
    if kind == "gradient":
        ramp = xs * math.cos(angle) + ys * math.sin(angle)
        return (ramp - ramp.min()) / (np.ptp(ramp) + 1e-6)
    return np.clip(0.5 + _smooth_noise(rng, height, width, period / 4), 0, 1)


def _texture(rng: np.random.Generator, kind: str, height: int, width: int, period: float) -> np.ndarray:
    """(H, W, 3) float32 RGB: two random colours blended by a pattern (one colour for 'solid')."""
    first = _colour(rng)
    if kind == "solid":
        return np.broadcast_to(first, (height, width, 3)).copy()
    weights = _pattern(rng, kind, height, width, period)[..., None]
    return first * weights + _colour(rng) * (1 - weights)


def _background(
    rng: np.random.Generator,
    width: int,
    height: int,
    frames: int,
    pan: tuple[float, float],
    factor: int,
    ranges: SceneRanges,
) -> np.ndarray:
    """A supersampled background (float32 RGB) of one of the ranges' kinds, big enough to pan over, with
    fine noise of the ranges' detail levels so flow sees it."""
    travel_x, travel_y = (math.ceil(abs(step) * (frames - 1) * factor) + factor for step in pan)
    size = (height * factor + travel_y, width * factor + travel_x)
    period = rng.uniform(0.15, 0.5) * min(width, height) * factor
    base = _texture(rng, str(rng.choice(ranges.backgrounds)), *size, period)
    fine = _smooth_noise(rng, *size, 1.5 * factor)[..., None] * rng.uniform(*ranges.detail)
    return np.clip(base + fine, 0, 255)


def _polygon(shape: str, radius: float, rng: np.random.Generator) -> np.ndarray:
    """Vertices (N, 2) of a shape centred on the origin within `radius`."""
    if shape == "rectangle":
        half = np.array([radius, radius * rng.uniform(0.45, 1.0)])
        half = half if rng.random() < 0.5 else half[::-1]
        return np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]]) * half
    sides = {"triangle": 3, "pentagon": 5, "hexagon": 6}.get(shape, 64)
    stretch = rng.uniform(0.5, 0.9) if shape == "ellipse" else 1.0
    angles = rng.uniform(0, 2 * math.pi) + np.arange(sides) * 2 * math.pi / sides
    return np.stack([np.cos(angles) * radius, np.sin(angles) * radius * stretch], axis=1)


def _make_sprite(
    rng: np.random.Generator,
    shape: str,
    speed: float,
    angle: float,
    pan: tuple[float, float],
    width: int,
    height: int,
    frames: int,
    scale: int,
    factor: int,
    ranges: SceneRanges,
) -> _Sprite:
    """A textured sprite whose path crosses a random point of the view at the clip's middle frame."""
    radius = rng.uniform(*ranges.sizes) * scale * factor
    side = 2 * math.ceil(radius) + 2
    mask = np.zeros((side, side), np.uint8)
    vertices = np.round(_polygon(shape, radius, rng) + side / 2).astype(np.int32)
    cv2.fillPoly(mask, [vertices], 1)
    patch = _texture(rng, str(rng.choice(ranges.fills)), side, side, rng.uniform(0.2, 0.6) * side)
    patch = np.clip(patch + _smooth_noise(rng, side, side, factor)[..., None] * 20, 0, 255)
    middle = (rng.uniform(0.15, 0.85) * width, rng.uniform(0.15, 0.85) * height)
    radians = math.radians(angle)
    velocity = (speed * math.cos(radians) + pan[0], speed * math.sin(radians) + pan[1])
    half = (frames - 1) / 2
    return _Sprite(
        patch, mask.astype(bool), (middle[0] - velocity[0] * half, middle[1] - velocity[1] * half), velocity
    )


def _paste(canvas: np.ndarray, layer: np.ndarray, mask: np.ndarray, left: int, top: int) -> None:
    """Copy `layer` where `mask` is set into `canvas`, corner at (left, top), clipped to the canvas."""
    height, width = canvas.shape[:2]
    x0, y0 = max(left, 0), max(top, 0)
    x1, y1 = min(left + mask.shape[1], width), min(top + mask.shape[0], height)
    if x0 >= x1 or y0 >= y1:
        return
    region = mask[y0 - top : y1 - top, x0 - left : x1 - left]
    canvas[y0:y1, x0:x1][region] = layer[y0 - top : y1 - top, x0 - left : x1 - left][region]


def _render(
    background: np.ndarray,
    sprites: list[_Sprite],
    pan: tuple[float, float],
    width: int,
    height: int,
    frames: int,
    factor: int,
) -> tuple[np.ndarray, np.ndarray, float]:
    """The clip's uint8 frames, its sprite labels (the one covering most of each pixel, 0 for none) and its
    true mean displacement (px/frame) over frames 0..T-2."""
    start_left = background.shape[1] - width * factor if pan[0] > 0 else 0
    start_top = background.shape[0] - height * factor if pan[1] > 0 else 0
    pixels, labels, moves = [], [], []
    pan_speed = math.hypot(*pan)
    for t in range(frames):
        left = start_left - round(pan[0] * t * factor)
        top = start_top - round(pan[1] * t * factor)
        canvas = background[top : top + height * factor, left : left + width * factor].copy()
        speed_map = np.full(canvas.shape[:2], pan_speed, np.float32)
        label_map = np.zeros(canvas.shape[:2], np.uint8)
        for number, sprite in enumerate(sprites, 1):
            x = round((sprite.centre[0] + sprite.velocity[0] * t) * factor) - sprite.mask.shape[1] // 2
            y = round((sprite.centre[1] + sprite.velocity[1] * t) * factor) - sprite.mask.shape[0] // 2
            _paste(canvas, sprite.patch, sprite.mask, x, y)
            speed_map_layer = np.full(sprite.mask.shape, math.hypot(*sprite.velocity), np.float32)
            _paste(speed_map, speed_map_layer, sprite.mask, x, y)
            _paste(label_map, np.full(sprite.mask.shape, number, np.uint8), sprite.mask, x, y)
        small = cv2.resize(canvas, (width, height), interpolation=cv2.INTER_AREA)
        pixels.append(np.clip(np.round(small), 0, 255).astype(np.uint8))
        labels.append(_majority(label_map, len(sprites), width, height))
        moves.append(float(speed_map.mean()))
    true_motion = float(np.mean(moves[:-1])) if frames > 1 else 0.0
    return np.stack(pixels), np.stack(labels), true_motion


def _majority(label_map: np.ndarray, count: int, width: int, height: int) -> np.ndarray:
    """(height, width) uint8: the label covering most of each output pixel of a supersampled label map."""
    shares = [
        cv2.resize((label_map == label).astype(np.float32), (width, height), interpolation=cv2.INTER_AREA)
        for label in range(count + 1)
    ]
    return np.argmax(np.stack(shares), axis=0).astype(np.uint8)
