"""Quiet third-party output: transformers' and diffusers' notices and progress bars, unless asked for."""

from __future__ import annotations

import os

ASK_FOR_CHATTER = "SVDLAB_LIBRARY_LOGS"  # set it (to anything) to see the libraries' own notices and bars


def quiet_libraries() -> None:
    """Hide transformers' and diffusers' notices (such as 'torchvision not installed') and their loading bars,
    unless SVDLAB_LIBRARY_LOGS is set or the user chose a level with TRANSFORMERS_VERBOSITY or
    DIFFUSERS_VERBOSITY. Call it before diffusers' pipelines are imported: importing them prints."""
    if os.environ.get(ASK_FOR_CHATTER):
        return
    from transformers.utils import logging as transformers_logging

    if "TRANSFORMERS_VERBOSITY" not in os.environ:
        transformers_logging.set_verbosity_error()
    transformers_logging.disable_progress_bar()  # its per-save "Writing model shards" bars
    from diffusers.utils import logging as diffusers_logging

    if "DIFFUSERS_VERBOSITY" not in os.environ:
        diffusers_logging.set_verbosity_error()
    diffusers_logging.disable_progress_bar()  # its "Loading pipeline components" bars
