"""Running an upscaler over a frame in overlapping tiles, so that large frames fit in memory.

The tiles are spread evenly over the frame, all `tile` x `tile` input pixels (or the frame's side, if
shorter), each overlapping its neighbours by at least `overlap` pixels (at most half a tile). In an
overlap the two outputs are cross-faded with linear ramps across it, so neighbouring weights sum to 1
there and no seam shows; where more tiles meet, the weights are normalised by their sum. A `run` that
maps every input pixel to its own `scale` x `scale` output pixels (nearest, pixel shuffle of a 1x1 conv)
gives exactly its untiled output; a network with a wider receptive field differs only within that field
of each tile's inner edges.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from svdlab.errors import InvalidParameterError


def tile_starts(length: int, tile: int, overlap: int) -> list[int]:
    """Evenly spread starts of `tile`-pixel tiles covering `length` pixels, overlapping at least `overlap`."""
    if length <= tile:
        return [0]
    count = -(-(length - overlap) // (tile - overlap))
    return [round(index * (length - tile) / (count - 1)) for index in range(count)]


def ramps(starts: list[int], size: int, scale: int) -> list[torch.Tensor]:
    """Per tile along one axis, output weights that rise linearly across its overlap with the tile before
    and fall across its overlap with the tile after (1 elsewhere)."""
    weights = []
    for index, start in enumerate(starts):
        weight = torch.ones(size * scale)
        rise = (starts[index - 1] + size - start) * scale if index > 0 else 0
        fall = (start + size - starts[index + 1]) * scale if index < len(starts) - 1 else 0
        if rise:
            weight[:rise] = torch.minimum(weight[:rise], (torch.arange(rise) + 0.5) / rise)
        if fall:
            weight[-fall:] = torch.minimum(weight[-fall:], (torch.arange(fall).flip(0) + 0.5) / fall)
        weights.append(weight)
    return weights


def tiled(
    run: Callable[[torch.Tensor], torch.Tensor],
    frames: torch.Tensor,
    scale: int,
    tile: int | None = None,
    overlap: int = 8,
) -> torch.Tensor:
    """`run` (frames -> frames `scale` times larger) applied to (T, 3, H, W) frames in tiles, blended;
    the overlap is at most half a tile."""
    if tile is not None and tile < 1:
        raise InvalidParameterError(f"tile={tile} is not allowed: use a tile side of 1 px or more")
    height, width = frames.shape[-2:]
    if tile is None or (height <= tile and width <= tile):
        return run(frames)
    overlap = min(overlap, tile // 2)
    size_y, size_x = min(tile, height), min(tile, width)
    rows, columns = tile_starts(height, size_y, overlap), tile_starts(width, size_x, overlap)
    out = torch.zeros(*frames.shape[:-2], height * scale, width * scale)
    total = torch.zeros(height * scale, width * scale)
    for top, weight_y in zip(rows, ramps(rows, size_y, scale)):
        for left, weight_x in zip(columns, ramps(columns, size_x, scale)):
            weight = weight_y[:, None] * weight_x[None, :]
            piece = run(frames[..., top : top + size_y, left : left + size_x])
            rows_out = slice(top * scale, (top + size_y) * scale)
            columns_out = slice(left * scale, (left + size_x) * scale)
            out[..., rows_out, columns_out] += piece * weight
            total[rows_out, columns_out] += weight
    return out / total
