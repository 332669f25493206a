"""Track the sprites of synthetic scenes (`svdlab.training.synthetic`) through a video by colour segmentation.

A sprite is given by its mask in frame 0. Its colour model is the mean RGB colour of the frame-0 pixels
under the mask (eroded by one pixel, away from blended edges), with a tolerance of three times their RMS
distance from that mean (at least TOLERANCE_FLOOR levels). In every frame, the pixels within tolerance
form connected regions (8-connectivity); the sprite is the region that overlaps the previous frame's
sprite region grown by SEARCH_RADIUS px most. Its centroid is the sprite's position, its pixel count its
area. A sprite is `lost` from the first frame where no region is found, and `at_edge` in frames where its
region touches the border (part of it may lie outside the view: its area there says nothing).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import cv2
import numpy as np

if TYPE_CHECKING:
    from svdlab.training.synthetic import SceneRanges, SpriteClip

TOLERANCE_FLOOR = 24.0
SEARCH_RADIUS = 8
MIN_SPRITE_AREA = 30


@dataclass
class Track:
    """A sprite's centroid (x, y) and area (px) per frame, whether it touches the border, if it is lost."""

    centres: np.ndarray
    areas: np.ndarray
    at_edge: np.ndarray
    lost: bool

    def displacement_per_frame(self) -> float:
        """Distance from the first to the last centroid over the number of steps, in px/frame."""
        return float(np.linalg.norm(self.centres[-1] - self.centres[0]) / (len(self.centres) - 1))

    def smallest_area_share(self) -> float:
        """The smallest area of a frame where the sprite is away from the border, over its frame-0 area."""
        inside = self.areas[~self.at_edge]
        return float(inside.min() / self.areas[0]) if len(inside) else 1.0


def colour_model(frame: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, float]:
    """Mean colour of the sprite's pixels in `frame` and the distance within which a pixel matches it."""
    core = cv2.erode(mask.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
    pixels = frame[core if core.sum() >= 4 else mask].astype(np.float32)
    mean = pixels.mean(axis=0)
    spread = float(np.sqrt(np.square(pixels - mean).sum(axis=1).mean()))
    return mean, max(3 * spread, TOLERANCE_FLOOR)


def matching(frame: np.ndarray, mean: np.ndarray, tolerance: float) -> np.ndarray:
    """(H, W) bool: pixels whose colour is within `tolerance` of `mean`."""
    return np.linalg.norm(frame.astype(np.float32) - mean, axis=2) <= tolerance


def track_sprite(frames: np.ndarray, mask: np.ndarray) -> Track:
    """Follow the sprite whose frame-0 mask is `mask` through (F, H, W, 3) uint8 frames."""
    mean, tolerance = colour_model(frames[0], mask)
    grow = np.ones((2 * SEARCH_RADIUS + 1,) * 2, np.uint8)
    region = mask.astype(bool)
    centres, areas, edges = [], [], []
    for index, frame in enumerate(frames):
        if index:
            count, components = cv2.connectedComponents(matching(frame, mean, tolerance).astype(np.uint8), 8)
            near = cv2.dilate(region.astype(np.uint8), grow).astype(bool)
            overlaps = np.bincount(components[near], minlength=count)[1:]
            if not overlaps.any():
                return _track(centres, areas, edges, lost=True, frames=len(frames))
            region = components == 1 + int(np.argmax(overlaps))
        ys, xs = np.nonzero(region)
        centres.append((xs.mean(), ys.mean()))
        areas.append(float(region.sum()))
        edges.append(bool(region[0].any() or region[-1].any() or region[:, 0].any() or region[:, -1].any()))
    return _track(centres, areas, edges, lost=False, frames=len(frames))


def track_sprites(frames: np.ndarray, labels: np.ndarray) -> list[Track]:
    """Tracks of every sprite labelled in the frame-0 label map `labels` (H, W), in label order."""
    return [track_sprite(frames, labels == number) for number in range(1, int(labels.max()) + 1)]


def follows_the_truth(clip: SpriteClip) -> bool:
    """Whether the tracker follows every sprite of a rendered clip within 1 px and 15 % of its true area,
    each sprite visible in every frame, at least MIN_SPRITE_AREA px and clear of the border in frame 0:
    a scene whose generated videos the tracker can be trusted on."""
    for number in range(1, len(clip.speeds) + 1):
        masks = clip.labels == number
        areas = masks.sum(axis=(1, 2))
        if areas[0] < MIN_SPRITE_AREA or not areas.all():
            return False
        track = track_sprite(clip.frames, masks[0])
        truth = [(np.nonzero(mask)[1].mean(), np.nonzero(mask)[0].mean()) for mask in masks]
        if track.lost or track.at_edge[0] or np.abs(track.centres - truth).max() >= 1:
            return False
        if np.abs(track.areas - areas).max() >= 0.15 * areas[0]:
            return False
    return True


def trackable_scenes(ranges: SceneRanges, count: int, first_seed: int) -> list[SpriteClip]:
    """The first `count` 64x64, 8-frame scenes from `first_seed` on whose truth the tracker follows."""
    from svdlab.training.synthetic import render_sprite_clip

    scenes, seed = [], first_seed
    while len(scenes) < count:
        clip = render_sprite_clip(seed, width=64, height=64, frames=8, ranges=ranges)
        if follows_the_truth(clip):
            scenes.append(clip)
        seed += 1
    return scenes


def _track(centres: list, areas: list, edges: list, lost: bool, frames: int) -> Track:
    """A Track from per-frame lists; a lost sprite's missing frames keep its last centre with area 0."""
    missing = frames - len(centres)
    centres = centres + [centres[-1]] * missing
    areas, edges = areas + [0.0] * missing, edges + [False] * missing
    return Track(np.array(centres), np.array(areas), np.array(edges), lost)
