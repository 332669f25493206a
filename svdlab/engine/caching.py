"""DeepCache-style feature caching on diffusers' UNetSpatioTemporalConditionModel.

Between adjacent sampling steps the UNet's deep features change little (Ma et al., "DeepCache", 2023).
Every `interval` UNet calls the whole UNet runs and the output of its second-to-last up block (what
enters the last up block) is kept; the calls in between run only the shallow blocks (conv_in, the
first down block, the last up block, conv_out) and take that kept feature instead of running the deep
ones. It works on the model's own modules, by swapping their `forward` for the duration of a run.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import torch


class DeepFeatureCache:
    """Reuses a UNet's deep features for `interval - 1` calls after each full call.

    Before each UNet call the caller names the call's rows (`next_call`); a call reuses the kept feature
    only if every one of its rows was in the full call that made it (its rows are picked out of it), so
    a pack whose rows change between steps (guidance intervals) stays correct.
    """

    def __init__(self, unet, interval: int):
        self.unet = unet
        self.interval = interval
        self.feature: torch.Tensor | None = None
        self.rows: list = []
        self.positions: list[int] | None = None
        self.reuses_since_full = 0
        self.full_calls = 0

    def next_call(self, rows: Sequence) -> None:
        """Decide whether the coming UNet call, over these row ids, reuses the kept feature or renews it."""
        known = set(self.rows)
        if self.feature is not None and self.reuses_since_full < self.interval - 1 and known.issuperset(rows):
            self.positions = [self.rows.index(row) for row in rows]
            self.reuses_since_full += 1
        else:
            self.positions = None
            self.rows = list(rows)
            self.reuses_since_full = 0
            self.full_calls += 1

    @contextmanager
    def attached(self) -> Iterator[DeepFeatureCache]:
        """The UNet with its deep blocks answering from the cache on reusing calls; restored on exit."""
        down, up = self.unet.down_blocks, self.unet.up_blocks
        roles = [(block, self._skipped_down) for block in down[1:]]
        roles += [(self.unet.mid_block, _passed_through), *((block, _passed_through) for block in up[:-2])]
        roles.append((up[-2], self._kept))
        saved = [(module, module.__dict__.get("forward")) for module, _ in roles]
        try:
            for module, role in roles:
                module.forward = self._wrapped(module, module.forward, role, keep=module is up[-2])
            yield self
        finally:
            for module, forward in saved:
                del module.forward
                if forward is not None:
                    module.forward = forward

    def _wrapped(self, module, original, role, keep: bool):
        """The module's forward: the original on full calls (keeping its output if `keep`), else `role`."""

        def forward(*args, **kwargs):
            if self.positions is None:
                out = original(*args, **kwargs)
                if keep:
                    self.feature = out
                return out
            return role(module, kwargs["hidden_states"] if "hidden_states" in kwargs else args[0])

        return forward

    def _skipped_down(self, module, hidden: torch.Tensor) -> tuple:
        """A skipped deep down block's output: placeholders, since only skipped up blocks read them."""
        outputs = len(module.resnets) + (len(module.downsamplers) if module.downsamplers is not None else 0)
        return hidden, (hidden,) * outputs

    def _kept(self, module, hidden: torch.Tensor) -> torch.Tensor:
        """The kept feature, picked out for this call's rows (rows are (job, frame) blocks of it)."""
        frames = self.feature.shape[0] // len(self.rows)
        per_row = self.feature.view(len(self.rows), frames, *self.feature.shape[1:])
        return per_row[self.positions].reshape(-1, *self.feature.shape[1:])


def _passed_through(module, hidden: torch.Tensor) -> torch.Tensor:
    """A skipped deep block's output: its input, unused, since the next block is skipped too."""
    return hidden
