"""Training clips: cut videos into labelled clips (prepare_dataset), relabel them, read them (ClipDataset).

A dataset is a folder (the format is documented in docs/datasets.md):

    DATASET/dataset.json      {"format": "svdlab-clips", "version": 1, "width", "height", "frames",
                               "calibration": {...}, "clips": [...], "skipped": [...]}
    DATASET/clips/<id>.npz    key "frames": uint8 (frames, height, width, 3)

Each video is decoded with PyAV and split into scenes where the colour histograms of consecutive frames
(64x64 thumbnails, 8 levels per channel) differ by more than `scene_threshold` (half the L1 distance,
0..1). Histograms hardly change when the camera or objects move, so motion does not look like a cut;
cuts between shots of very similar colours can be missed (lower the threshold to catch them). Inside a
scene, clips of `frames` frames are taken at each frame stride, back to back without overlap; each frame
is fitted to the size (crop, pad or stretch), the clip's motion_score is measured on the fitted frames and
turned into motion_bucket_id by a `MotionCalibration`; its fps label is round(source fps / stride).
"""

from __future__ import annotations

import json
import os
import shutil
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from svdlab.errors import InvalidParameterError, OutputError, SvdlabWarning
from svdlab.media import FIT_MODES, atomic_path, fit_image, write_json_atomic
from svdlab.metrics.motion import motion_score
from svdlab.training.labels import MotionCalibration, fps_label, stride_for_fps

FORMAT = "svdlab-clips"
VERSION = 1
INDEX = "dataset.json"
CLIPS = "clips"
VIDEO_EXTENSIONS = (
    ".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi", ".mpg", ".mpeg", ".ts", ".wmv", ".flv", ".gif"
)  # fmt: skip
SCENE_THRESHOLD = 0.4
THUMBNAIL_SIDE = 64
HISTOGRAM_LEVELS = 8

CalibrationChoice = MotionCalibration | str | os.PathLike | None


@dataclass
class Clip:
    """One training clip: frames uint8 (T, H, W, 3) with its labels."""

    id: str
    frames: np.ndarray
    fps: int
    motion_bucket_id: int
    motion_score: float


@dataclass
class PreparedDataset:
    """What prepare_dataset wrote: the folder, the clip records, the skipped videos and the calibration."""

    path: Path
    clips: list[dict]
    skipped: list[dict]
    calibration: MotionCalibration


class _Skip(Exception):
    """A video that gives no (more) clips, with the reason."""


@dataclass(frozen=True)
class _Plan:
    """How to cut every video: size, clip length, strides or target fps, fit, scene cuts."""

    width: int
    height: int
    frames: int
    fps: tuple[float, ...]
    strides: tuple[int, ...]
    fit: str
    scene_threshold: float
    max_clips_per_scene: int | None

    def strides_for(self, source_fps: float) -> list[int]:
        """The strides to sample a `source_fps` video at (from the target fps if any were given)."""
        if self.fps:
            return sorted({stride_for_fps(source_fps, target) for target in self.fps})
        return list(self.strides)


def find_videos(videos: str | os.PathLike | Sequence[str | os.PathLike]) -> list[Path]:
    """Video files from folders (searched recursively, by extension) and files, each checked to exist."""
    items = [videos] if isinstance(videos, (str, os.PathLike)) else list(videos)
    if not items:
        raise InvalidParameterError("no videos given; pass a folder of videos or video files")
    found: list[Path] = []
    for item in map(Path, items):
        if item.is_dir():
            found += _folder_videos(item)
        elif item.is_file():
            found.append(item)
        else:
            raise InvalidParameterError(f"{item}: no such file or folder; pass a folder of videos or files")
    return found


def _folder_videos(folder: Path) -> list[Path]:
    """The video files under `folder`, sorted; none raises InvalidParameterError."""
    found = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in VIDEO_EXTENSIONS)
    if not found:
        raise InvalidParameterError(
            f"{folder}: no video files ({', '.join(VIDEO_EXTENSIONS)}); point to a folder of videos"
        )
    return found


def prepare_dataset(
    videos: str | os.PathLike | Sequence[str | os.PathLike],
    out: str | os.PathLike,
    *,
    width: int = 64,
    height: int = 64,
    frames: int = 8,
    fps: Sequence[float] | None = None,
    strides: Sequence[int] | None = None,
    fit: str = "crop",
    calibration: CalibrationChoice = None,
    scene_threshold: float = SCENE_THRESHOLD,
    max_clips_per_scene: int | None = None,
    overwrite: bool = False,
    on_skip: Callable[[Path, str], None] | None = None,
    on_clip: Callable[[dict], None] | None = None,
    on_video: Callable[[Path, int], None] | None = None,
) -> PreparedDataset:
    """Cut videos into labelled clips of `frames` frames at width x height and write a dataset to `out`."""
    plan = _plan(width, height, frames, fps, strides, fit, scene_threshold, max_clips_per_scene)
    chosen = _calibration_choice(calibration)
    sources = find_videos(videos)
    root = _fresh_folder(Path(out), overwrite)
    records: list[dict] = []
    skipped: list[dict] = []
    for source in sources:
        before = len(records)
        try:
            for record in _video_records(source, plan, root, len(records)):
                records.append(record)
                if on_clip:
                    on_clip(record)
        except _Skip as reason:
            skipped.append(
                {"source": str(source), "reason": _skip_reason(str(reason), len(records) - before)}
            )
            if on_skip:
                on_skip(source, skipped[-1]["reason"])
        if on_video:
            on_video(source, len(records) - before)
    used = _prepare_calibration(chosen, records, width)
    _label(records, used, width)
    _write_index(root, plan, used, records, skipped)
    return PreparedDataset(root, records, skipped, used)


def relabel(dataset: str | os.PathLike, calibration: CalibrationChoice = None) -> MotionCalibration:
    """Relabel a dataset's clips from their stored motion scores; return the calibration used."""
    root = Path(dataset)
    index = read_index(root)
    chosen = _calibration_choice(calibration)
    used = _fitted(index["clips"], index["width"]) if chosen == "fit" else chosen
    _label(index["clips"], used, index["width"])
    write_json_atomic(root / INDEX, {**index, "calibration": used.to_dict()})
    return used


def read_index(dataset: str | os.PathLike) -> dict:
    """The dataset.json of a dataset folder, checked to be an svdlab clip dataset this version reads."""
    root = Path(dataset)
    hint = "point to a folder written by `svdlab prepare-data`"
    try:
        index = json.loads((root / INDEX).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InvalidParameterError(f"{root}: not a clip dataset (no {INDEX}); {hint}") from None
    except (OSError, ValueError) as error:
        raise InvalidParameterError(f"{root / INDEX}: cannot read it ({error}); {hint}") from None
    if not isinstance(index, dict) or index.get("format") != FORMAT:
        raise InvalidParameterError(f"{root / INDEX}: not an {FORMAT} index; {hint}")
    if index.get("version") != VERSION:
        raise InvalidParameterError(
            f"{root / INDEX}: version {index.get('version')!r}, this svdlab reads version {VERSION}; "
            "prepare the data again or use the svdlab that wrote it"
        )
    return index


class ClipDataset:
    """The clips of a dataset folder, read one by one: len(), dataset[i] -> Clip."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        index = read_index(self.path)
        self.width, self.height, self.frames = index["width"], index["height"], index["frames"]
        self.records: list[dict] = index["clips"]
        self.skipped: list[dict] = index["skipped"]
        self.calibration = MotionCalibration.from_dict(index["calibration"])

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, item: int) -> Clip:
        record = self.records[item]
        try:
            with np.load(self.path / record["file"]) as data:
                frames = data["frames"]
        except (OSError, KeyError, ValueError) as error:
            raise InvalidParameterError(
                f"{self.path / record['file']}: cannot read clip {record['id']} ({error}); "
                "prepare the dataset again"
            ) from None
        return Clip(
            record["id"], frames, int(record["fps"]), int(record["motion_bucket_id"]), record["motion_score"]
        )


def _plan(
    width: int,
    height: int,
    frames: int,
    fps: Sequence[float] | None,
    strides: Sequence[int] | None,
    fit: str,
    scene_threshold: float,
    max_clips_per_scene: int | None,
) -> _Plan:
    """The checked cutting plan; a bad value raises InvalidParameterError saying what is allowed."""
    if width < 1 or height < 1:
        raise InvalidParameterError(f"size {width}x{height} is not allowed: use sides of 1 pixel or more")
    if frames < 2:
        raise InvalidParameterError(f"frames={frames} is not allowed: clips need 2 frames or more")
    if fps and strides:
        raise InvalidParameterError("pass target fps or strides, not both")
    if fps and not all(value > 0 for value in fps):
        raise InvalidParameterError(f"fps={list(fps)} is not allowed: use frame rates above 0")
    if strides is not None and not (strides and all(value >= 1 for value in strides)):
        raise InvalidParameterError(f"strides={list(strides)} is not allowed: use strides of 1 or more")
    if fit not in FIT_MODES:
        raise InvalidParameterError(f"fit={fit!r} is not allowed: choose one of {', '.join(FIT_MODES)}")
    if not 0 < scene_threshold <= 1:
        raise InvalidParameterError(
            f"scene_threshold={scene_threshold} is not allowed: use a value in (0, 1]"
        )
    if max_clips_per_scene is not None and max_clips_per_scene < 1:
        raise InvalidParameterError(
            f"max_clips_per_scene={max_clips_per_scene} is not allowed: use 1 or more"
        )
    chosen_strides = tuple(sorted(set(strides or [1])))
    return _Plan(
        width, height, frames, tuple(fps or ()), chosen_strides, fit, scene_threshold, max_clips_per_scene
    )


def _calibration_choice(calibration: CalibrationChoice) -> MotionCalibration | str:
    """A calibration, or 'fit' to fit one to the clips: None and 'default' give the default curve."""
    if isinstance(calibration, MotionCalibration):
        return calibration
    if calibration is None or calibration == "default":
        return MotionCalibration.default()
    if calibration == "fit":
        return "fit"
    return MotionCalibration.load(calibration)


def _fitted(records: list[dict], width: int) -> MotionCalibration:
    """A calibration fitted to the records' relative motion scores."""
    return MotionCalibration.fit([record["motion_score"] / width for record in records])


def _prepare_calibration(
    chosen: MotionCalibration | str, records: list[dict], width: int
) -> MotionCalibration:
    """The calibration to label new clips with; a fit that is impossible falls back to the default, warned."""
    if chosen != "fit":
        return chosen
    try:
        return _fitted(records, width)
    except InvalidParameterError as error:
        warnings.warn(
            f"{error}; used the default calibration (svdlab.training.dataset.relabel can refit it)",
            SvdlabWarning,
            2,
        )
        return MotionCalibration.default()


def _label(records: list[dict], calibration: MotionCalibration, width: int) -> None:
    """Set every record's motion_bucket_id from its motion_score."""
    for record in records:
        record["motion_bucket_id"] = calibration.bucket(record["motion_score"], width)


def _fresh_folder(root: Path, overwrite: bool) -> Path:
    """The output folder, with no dataset in it: an existing one is removed if `overwrite`, else refused."""
    existing = [root / INDEX, root / CLIPS]
    if any(path.exists() for path in existing):
        if not overwrite:
            raise InvalidParameterError(
                f"{root} already holds a dataset; choose another folder or overwrite it (--overwrite)"
            )
        (root / INDEX).unlink(missing_ok=True)
        shutil.rmtree(root / CLIPS, ignore_errors=True)
    try:
        (root / CLIPS).mkdir(parents=True)
    except OSError as error:
        raise OutputError(
            f"{root}: cannot create the dataset folder ({error}); choose a writable one"
        ) from None
    return root


def _write_index(
    root: Path, plan: _Plan, calibration: MotionCalibration, records: list[dict], skipped: list[dict]
) -> None:
    """Write dataset.json atomically."""
    index = {
        "format": FORMAT,
        "version": VERSION,
        "width": plan.width,
        "height": plan.height,
        "frames": plan.frames,
        "fit": plan.fit,
        "calibration": calibration.to_dict(),
        "clips": records,
        "skipped": skipped,
    }
    write_json_atomic(root / INDEX, index)


def _save_clip(path: Path, frames: np.ndarray) -> None:
    """Write one clip's frames as a compressed .npz, atomically."""
    try:
        with atomic_path(path) as temp, open(temp, "wb") as file:
            np.savez_compressed(file, frames=frames)
    except OSError as error:
        raise OutputError(
            f"{path}: cannot write the clip ({error}); free space or choose another --out"
        ) from None


def _skip_reason(reason: str, kept: int) -> str:
    """The reason a video was (partly) skipped, saying how many of its clips were kept."""
    return f"{reason}; kept its first {kept} clips" if kept else reason


def _video_records(source: Path, plan: _Plan, root: Path, first_id: int) -> Iterator[dict]:
    """Cut one video into clips, write them and yield their records (without motion_bucket_id yet)."""
    import av

    try:
        with av.open(str(source)) as container:
            if not container.streams.video:
                raise _Skip("no video stream")
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            rate = stream.average_rate or stream.guessed_rate
            if not rate:
                raise _Skip("unknown frame rate")
            count = first_id
            for scene, start, stride, clip in _cut(container.decode(stream), float(rate), plan):
                clip_id = f"{count:06d}"
                _save_clip(root / CLIPS / f"{clip_id}.npz", clip)
                count += 1
                yield {
                    "id": clip_id,
                    "file": f"{CLIPS}/{clip_id}.npz",
                    "source": str(source),
                    "scene": scene,
                    "start": start,
                    "stride": stride,
                    "fps": fps_label(float(rate), stride),
                    "source_fps": float(rate),
                    "motion_score": motion_score(clip),
                }
    except (av.FFmpegError, OSError) as error:
        reason = getattr(error, "strerror", None) or " ".join(str(error).split())
        raise _Skip(f"cannot decode it ({reason})") from None


def _cut(decoded: Iterator, source_fps: float, plan: _Plan) -> Iterator[tuple[int, int, int, np.ndarray]]:
    """(scene, start frame, stride, fitted clip) for every clip of a decoded video; _Skip if it gives none."""
    strides = plan.strides_for(source_fps)
    sampler, previous, scene, longest, made = None, None, -1, 0, 0
    index = -1
    for index, frame in enumerate(decoded):
        histogram = _histogram(frame)
        if previous is None or _distance(previous, histogram) > plan.scene_threshold:
            scene += 1
            sampler = _SceneSampler(index, strides, plan.frames, plan.max_clips_per_scene)
        previous = histogram
        longest = max(longest, index - sampler.first + 1)
        if sampler.wants(index):
            image = fit_image(frame.to_image(), plan.width, plan.height, plan.fit)
            for start, stride, clip in sampler.add(index, np.asarray(image.convert("RGB"))):
                made += 1
                yield scene, start, stride, clip
    if not made:
        need = (plan.frames - 1) * strides[0] + 1
        raise _Skip(
            f"too short: {index + 1} frames, longest scene {longest}; a clip needs {need} frames "
            f"(frames={plan.frames} at stride {strides[0]})"
        )


def _histogram(frame) -> np.ndarray:
    """Normalised colour histogram (8 levels per channel) of a small thumbnail of a decoded frame."""
    thumbnail = frame.reformat(width=THUMBNAIL_SIDE, height=THUMBNAIL_SIDE, format="rgb24").to_ndarray()
    levels = (thumbnail // (256 // HISTOGRAM_LEVELS)).astype(np.int32)
    bins = (levels[..., 0] * HISTOGRAM_LEVELS + levels[..., 1]) * HISTOGRAM_LEVELS + levels[..., 2]
    counts = np.bincount(bins.ravel(), minlength=HISTOGRAM_LEVELS**3)
    return counts / counts.sum()


def _distance(first: np.ndarray, second: np.ndarray) -> float:
    """Half the L1 distance of two normalised histograms: 0 for the same colours, 1 for none shared."""
    return float(np.abs(first - second).sum() / 2)


class _SceneSampler:
    """Cuts one scene's frames into back-to-back clips at each stride as the frames arrive."""

    def __init__(self, first: int, strides: list[int], length: int, limit: int | None):
        self.first, self.length, self.limit = first, length, limit
        self.starts: dict[int, int | None] = {stride: 0 for stride in strides}
        self.made = dict.fromkeys(strides, 0)
        self.kept: dict[int, np.ndarray] = {}

    def wants(self, index: int) -> bool:
        """Whether frame `index` (of the video) belongs to a clip still being collected."""
        offset = index - self.first
        return any(
            start is not None and offset >= start and (offset - start) % stride == 0
            for stride, start in self.starts.items()
        )

    def add(self, index: int, frame: np.ndarray) -> list[tuple[int, int, np.ndarray]]:
        """Keep a wanted frame; return the clips (start frame, stride, frames) it completes."""
        offset = index - self.first
        self.kept[offset] = frame
        done = []
        for stride, start in self.starts.items():
            if start is None or offset != start + (self.length - 1) * stride:
                continue
            clip = np.stack([self.kept[start + step * stride] for step in range(self.length)])
            done.append((self.first + start, stride, clip))
            self.made[stride] += 1
            full = self.limit is not None and self.made[stride] >= self.limit
            self.starts[stride] = None if full else start + self.length * stride
        pending = [start for start in self.starts.values() if start is not None]
        oldest = min(pending, default=offset + 1)
        self.kept = {key: value for key, value in self.kept.items() if key >= oldest}
        return done
