"""The sprite tracker that the demo model's object checks rely on, against the renderer's ground truth."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from svdlab.training.synthetic import SceneRanges, render_sprite_clip
from svdlab.training.tracking import follows_the_truth, track_sprite, track_sprites, trackable_scenes

SOLID = SceneRanges(max_sprites=2, max_speed=0.05, fills=("solid",))


def true_centres(labels: np.ndarray) -> np.ndarray:
    """(F, 2) centroid (x, y) of a sprite's true label mask in each frame."""
    return np.array([(np.nonzero(mask)[1].mean(), np.nonzero(mask)[0].mean()) for mask in labels])


@pytest.mark.parametrize("seed", (90_003, 90_005, 90_010, 90_016, 90_027, 90_030))
def test_the_tracker_follows_a_rendered_sprite_to_its_true_position_and_area(seed):
    clip = render_sprite_clip(seed, ranges=SOLID)
    for number in range(1, len(clip.speeds) + 1):
        labels = clip.labels == number
        track = track_sprite(clip.frames, labels[0])
        assert not track.lost
        assert np.abs(track.centres - true_centres(labels)).max() < 1.0
        assert np.abs(track.areas - labels.sum(axis=(1, 2))).max() < 0.15 * labels[0].sum()
        velocity = np.diff(true_centres(labels), axis=0).mean(axis=0)
        assert track.displacement_per_frame() == pytest.approx(np.linalg.norm(velocity), abs=0.1)
        assert track.smallest_area_share() > 0.85
    assert follows_the_truth(clip)
    assert [t.areas[0] for t in track_sprites(clip.frames, clip.labels[0])] == [
        float((clip.labels[0] == number).sum()) for number in range(1, len(clip.speeds) + 1)
    ]


def test_a_sprite_that_fades_into_the_background_is_lost_or_shrinks():
    clip = render_sprite_clip(90_010, ranges=SOLID)
    mask = clip.labels[0] == 1
    background = np.median(clip.frames[0][~mask], axis=0)
    opacity = np.linspace(1, 0, len(clip.frames))[:, None, None, None]
    sprite = (clip.labels == 1)[..., None]
    faded = np.where(sprite, opacity * clip.frames + (1 - opacity) * background, clip.frames).astype(np.uint8)
    track = track_sprite(faded, mask)
    assert track.lost or track.smallest_area_share() < 0.7
    assert not follows_the_truth(replace(clip, frames=faded))


def test_labels_mark_each_visible_sprite():
    clip = render_sprite_clip(90_002, ranges=SOLID)
    assert clip.labels.shape == clip.frames.shape[:3] and clip.labels.dtype == np.uint8
    assert set(np.unique(clip.labels)) == {0, 1, 2}
    alone = render_sprite_clip(90_002, ranges=SOLID, sprites=0)
    assert not alone.labels.any()


def test_trackable_scenes_are_the_first_the_tracker_follows():
    scenes = trackable_scenes(SOLID, 3, first_seed=90_000)
    assert len(scenes) == 3 and all(follows_the_truth(clip) for clip in scenes)
    seeds = [clip.seed for clip in scenes]
    skipped = [seed for seed in range(90_000, seeds[-1]) if seed not in seeds]
    assert all(not follows_the_truth(render_sprite_clip(seed, ranges=SOLID)) for seed in skipped)
