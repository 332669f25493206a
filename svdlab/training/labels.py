"""Training labels: motion_bucket_id from a measured motion score, fps from a frame stride.

A `MotionCalibration` maps a *relative* motion score to a bucket 0..255 through monotone piecewise-linear
knots. The relative score is `motion_score` (px/frame, see `svdlab.metrics.motion`) divided by the clip's
width in pixels, so the same motion gets the same bucket at any resolution: a pan across 1 % of the
width per frame is 0.01 at 64 px and at 1024 px. Scores between knots are interpolated; scores outside
the knots take the end buckets.

The default curve (`MotionCalibration.default()`) has knots 0 -> 0, 0.005 -> 40, 0.02 -> 140 and
0.05 -> 255: a pan of half a percent of the width per frame is a low bucket (40), about 2 % lands near
SVD's default bucket 127, and 5 % or more saturates at 255. It is a fixed, documented choice (Stability
did not publish theirs), slightly concave so slow motions, the most common in real footage, get more
buckets. `MotionCalibration.fit(scores)` refits it to a dataset: knots at the scores' quantiles, so the
dataset's buckets spread evenly over 0..255.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from svdlab.errors import InvalidParameterError
from svdlab.media import write_json_atomic

MAX_BUCKET = 255
DEFAULT_SCORES = (0.0, 0.005, 0.02, 0.05)
DEFAULT_BUCKETS = (0.0, 40.0, 140.0, 255.0)
FIT_KNOTS = 17
UNIT = "motion_score / width (px per frame per px of width)"


@dataclass(frozen=True)
class MotionCalibration:
    """Monotone piecewise-linear map from relative motion score to motion_bucket_id 0..255."""

    scores: tuple[float, ...]
    buckets: tuple[float, ...]
    source: str = field(default="custom", compare=False)

    def __post_init__(self) -> None:
        scores, buckets = tuple(map(float, self.scores)), tuple(map(float, self.buckets))
        object.__setattr__(self, "scores", scores)
        object.__setattr__(self, "buckets", buckets)
        if len(scores) < 2 or len(scores) != len(buckets):
            raise InvalidParameterError(
                "a motion calibration needs two or more knots, as many scores as buckets"
            )
        if not all(math.isfinite(value) and value >= 0 for value in scores):
            raise InvalidParameterError("calibration scores must be finite and 0 or more")
        if any(later <= earlier for earlier, later in zip(scores, scores[1:])):
            raise InvalidParameterError("calibration scores must strictly increase from knot to knot")
        if not all(0 <= value <= MAX_BUCKET for value in buckets):
            raise InvalidParameterError(f"calibration buckets must lie in 0..{MAX_BUCKET}")
        if any(later < earlier for earlier, later in zip(buckets, buckets[1:])):
            raise InvalidParameterError("calibration buckets must not decrease from knot to knot")

    @classmethod
    def default(cls) -> MotionCalibration:
        """The fixed default curve: 0.5 % of the width per frame -> 40, 2 % -> 140, 5 % and up -> 255."""
        return cls(DEFAULT_SCORES, DEFAULT_BUCKETS, source="default")

    @classmethod
    def fit(cls, scores: Sequence[float], knots: int = FIT_KNOTS) -> MotionCalibration:
        """A curve with knots at the quantiles of these relative scores, spreading them evenly over 0..255."""
        values = np.asarray(scores, dtype=np.float64)
        if knots < 2:
            raise InvalidParameterError(f"knots={knots} is not allowed: use 2 or more")
        if values.ndim != 1 or not np.all(np.isfinite(values)) or np.any(values < 0):
            raise InvalidParameterError("fit needs a list of finite relative motion scores, 0 or more")
        levels = np.linspace(0.0, 1.0, knots)
        quantiles, first = np.unique(np.quantile(values, levels) if len(values) else [], return_index=True)
        if len(quantiles) < 2:
            raise InvalidParameterError(
                "fit needs clips with at least two different motion scores; add more varied clips or use "
                "the default calibration"
            )
        return cls(tuple(quantiles), tuple(levels[first] * MAX_BUCKET), source="fit")

    def bucket(self, score: float, width: int) -> int:
        """motion_bucket_id of a clip `width` px wide whose motion_score is `score` px/frame."""
        if width < 1:
            raise InvalidParameterError(f"width={width} is not allowed: use 1 pixel or more")
        if not (math.isfinite(score) and score >= 0):
            raise InvalidParameterError(f"motion score {score} is not allowed: use a finite score, 0 or more")
        return int(round(float(np.interp(score / width, self.scores, self.buckets))))

    def to_dict(self) -> dict:
        """The calibration as a JSON-ready dict (what `from_dict` reads)."""
        return {
            "kind": "piecewise-linear",
            "unit": UNIT,
            "source": self.source,
            "scores": list(self.scores),
            "buckets": list(self.buckets),
        }

    @classmethod
    def from_dict(cls, data: dict) -> MotionCalibration:
        """A calibration from `to_dict` output; a malformed dict raises InvalidParameterError."""
        try:
            return cls(
                tuple(data["scores"]), tuple(data["buckets"]), source=str(data.get("source", "custom"))
            )
        except (KeyError, TypeError, ValueError) as error:
            raise InvalidParameterError(
                f"not a motion calibration ({error!r}); it needs 'scores' and 'buckets' lists"
            ) from None

    def save(self, path: str | os.PathLike) -> Path:
        """Write the calibration as JSON, atomically; return the path."""
        return write_json_atomic(path, self.to_dict())

    @classmethod
    def load(cls, path: str | os.PathLike) -> MotionCalibration:
        """Read a calibration saved with `save` (or a dataset.json, whose 'calibration' it takes)."""
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, ValueError) as error:
            reason = getattr(error, "strerror", None) or error
            raise InvalidParameterError(
                f"{path}: cannot read a calibration ({reason}); pass a JSON file saved by svdlab"
            ) from None
        if isinstance(data, dict) and isinstance(data.get("calibration"), dict):
            data = data["calibration"]
        if not isinstance(data, dict):
            raise InvalidParameterError(f"{path}: not a motion calibration; pass a JSON file saved by svdlab")
        return cls.from_dict(data)


def fps_label(source_fps: float, stride: int) -> int:
    """The fps label of clips taking every `stride`-th frame of a `source_fps` video: rounded, at least 1."""
    if stride < 1:
        raise InvalidParameterError(f"stride={stride} is not allowed: use 1 or more")
    return max(1, round(source_fps / stride))


def stride_for_fps(source_fps: float, target_fps: float) -> int:
    """The frame stride that brings a `source_fps` video closest to `target_fps`: at least 1."""
    if not (math.isfinite(target_fps) and target_fps > 0):
        raise InvalidParameterError(f"fps={target_fps} is not allowed: use a frame rate above 0")
    return max(1, round(source_fps / target_fps))
