"""`python -m tests.gated_sweep ARGS`: the svdlab CLI whose sweep, after recording each video, waits until
the file named by $SVDLAB_TEST_GATE exists; tests use it to stop or join a sweep at a known point
(waiting on files and store rows, never on the clock)."""

import os
import sys
import time
from pathlib import Path

from svdlab.experiments import runner

_finish = runner._finish


def _finish_then_wait(sweep, result):
    """Record the video as usual, then wait at the gate."""
    tracked = _finish(sweep, result)
    gate = Path(os.environ["SVDLAB_TEST_GATE"])
    while not gate.exists():
        time.sleep(0.02)
    return tracked


if __name__ == "__main__":
    runner._finish = _finish_then_wait
    from svdlab.cli import app

    app(sys.argv[1:], prog_name="svdlab")
