"""python -m svdlab: the command line (also what `accelerate launch -m svdlab` runs)."""

from svdlab.cli import app

app(prog_name="svdlab")
