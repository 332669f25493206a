"""The svdlab command line: thin typer commands over the library."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from svdlab.errors import SvdlabError

app = typer.Typer(
    help="Image-to-video with Stable Video Diffusion.", no_args_is_help=True, pretty_exceptions_enable=False
)
out_console = Console()
err_console = Console(stderr=True)


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    err_console.print(f"[yellow]warning:[/] {message}", highlight=False)


def fail(message: str) -> typer.Exit:
    """Print a one-line error and return the exit (code 2) to raise."""
    err_console.print(f"[red]error:[/] {message}", highlight=False, soft_wrap=True)
    return typer.Exit(code=2)


@app.callback()
def main() -> None:
    """svdlab: generate, measure and compare Stable Video Diffusion videos."""
    warnings.showwarning = _show_warning
    from transformers.utils import logging as transformers_logging

    transformers_logging.set_verbosity_error()  # hide library chatter such as "torchvision not installed"


@app.command()
def models() -> None:
    """List the built-in model presets and their defaults."""
    from svdlab.models import PRESETS

    table = Table("name", "frames", "size", "steps", "guidance", "source", "description")
    table.columns[0].no_wrap = True
    for preset in PRESETS.values():
        table.add_row(
            preset.name,
            str(preset.num_frames),
            f"{preset.width}x{preset.height}",
            str(preset.steps),
            f"{preset.min_guidance:g}-{preset.max_guidance:g}",
            preset.repo_id or "built-in (offline)",
            preset.description,
        )
    out_console.print(table)


@app.command()
def generate(
    images: Annotated[list[str], typer.Argument(help="Image files or http(s) URLs.")],
    model: Annotated[
        str, typer.Option(help="Preset (svdlab models), hub id or local folder.")
    ] = "tiny-random",
    motion_bucket_id: Annotated[int | None, typer.Option(help="Amount of motion (trained 0..255).")] = None,
    noise_aug_strength: Annotated[
        float | None, typer.Option(help="Noise added to the input (trained ~0.02..0.15).")
    ] = None,
    fps: Annotated[int | None, typer.Option(help="Frame-rate conditioning and playback fps.")] = None,
    num_frames: Annotated[int | None, typer.Option(help="Frames per video.")] = None,
    steps: Annotated[int | None, typer.Option(help="Sampler steps.")] = None,
    min_guidance: Annotated[float | None, typer.Option(help="Guidance scale at the first frame.")] = None,
    max_guidance: Annotated[float | None, typer.Option(help="Guidance scale at the last frame.")] = None,
    seed: Annotated[int, typer.Option(help="Random seed (same frames as diffusers with this seed).")] = 42,
    size: Annotated[str | None, typer.Option(help="Output size WIDTHxHEIGHT, e.g. 1024x576.")] = None,
    fit: Annotated[str, typer.Option(help="How the image meets the size: crop, pad or stretch.")] = "crop",
    decode_chunk_size: Annotated[
        int | None, typer.Option(help="Frames decoded at once (less memory).")
    ] = None,
    offload: Annotated[str, typer.Option(help="CPU offload: none, model or sequential.")] = "none",
    forward_chunking: Annotated[bool, typer.Option(help="Chunk the UNet feed-forward layers.")] = False,
    batch_size: Annotated[int | None, typer.Option(help="Videos per UNet call (default: measured).")] = None,
    dtype: Annotated[str | None, typer.Option(help="float32, float16 or bfloat16.")] = None,
    device: Annotated[str | None, typer.Option(help="cpu, cuda, cuda:1, mps (default: best found).")] = None,
    variant: Annotated[str | None, typer.Option(help="Weight variant to load, e.g. fp16.")] = None,
    allow_pickle: Annotated[
        bool, typer.Option(help="Allow pickle weights (they can run code; trust them first).")
    ] = False,
    format: Annotated[str, typer.Option("--format", help="mp4, webm, gif, webp or png.")] = "mp4",
    out: Annotated[Path, typer.Option(help="Folder for videos and manifests.")] = Path("outputs"),
    quiet: Annotated[bool, typer.Option(help="No progress bar.")] = False,
) -> None:
    """Turn each IMAGE into a video; several images are batched together."""
    from svdlab.api import generate as generate_videos

    failures: list[str] = []

    def report(name: str, error: SvdlabError) -> None:
        failures.append(name)
        err_console.print(f"[red]error:[/] {error}", highlight=False, soft_wrap=True)

    try:
        videos = generate_videos(
            images,
            model,
            motion_bucket_id=motion_bucket_id,
            noise_aug_strength=noise_aug_strength,
            fps=fps,
            num_frames=num_frames,
            steps=steps,
            min_guidance=min_guidance,
            max_guidance=max_guidance,
            seed=seed,
            size=size,
            fit=fit,
            decode_chunk_size=decode_chunk_size,
            offload=offload,
            forward_chunking=forward_chunking,
            batch_size=batch_size,
            dtype=dtype,
            device=device,
            variant=variant,
            allow_pickle=allow_pickle,
            format=format,
            out=out,
            progress=not quiet,
            on_image_error=report,
        )
    except SvdlabError as error:
        raise fail(str(error)) from None
    except KeyboardInterrupt:
        raise fail(f"interrupted; finished videos are in {out}; run the command again for the rest") from None
    for video in videos:
        out_console.print(f"{video.source} -> {video.path}", highlight=False, soft_wrap=True)
    if failures:
        raise typer.Exit(code=2)
