"""The svdlab command line: thin typer commands over the library."""

from __future__ import annotations

import signal
import warnings
from pathlib import Path
from typing import Annotated

import typer
from rich.measure import Measurement
from rich.table import Table

from svdlab import __version__
from svdlab.cli_help import FROM_MODEL, ReadableTyper, examples
from svdlab.console import err_console, out_console, print_error, print_line, print_warning
from svdlab.errors import SvdlabError

DEFAULT_MODEL = "demo"
app = ReadableTyper(
    help="Image-to-video with Stable Video Diffusion.",
    epilog=examples(
        "svdlab generate examples/sprites/scene-1.png --motion-bucket-id 180",
        "svdlab sweep examples/motion_bucket_sweep.toml",
    ),
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


_shown_warnings: set[str] = set()


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """Print each distinct warning once, on one line."""
    if str(message) not in _shown_warnings:
        _shown_warnings.add(str(message))
        print_warning(str(message))


def fail(message: str) -> typer.Exit:
    """Print a one-line error and return the exit (code 2) to raise."""
    print_error(message)
    return typer.Exit(code=2)


def _warn_if_fallen_back(made_by: dict) -> None:
    """Warn where a training-free method stood in for the one asked (a manifest's `made_by` or
    `interpolation` entry)."""
    if "asked" in made_by:
        print_warning(f"{made_by['why']}: interpolated by {made_by['method']} instead of {made_by['asked']}")


def _print_version(value: bool) -> None:
    if value:
        print_line(f"svdlab {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[
        bool, typer.Option("--version", is_eager=True, callback=_print_version, help="Print the version.")
    ] = False,
) -> None:
    """svdlab: generate, measure and compare Stable Video Diffusion videos."""
    _shown_warnings.clear()
    warnings.showwarning = _show_warning


def _quiet_libraries() -> None:
    """Hide diffusers' and transformers' chatter; called by the commands that load models (not at
    start-up, so that commands which need neither library start at once)."""
    from svdlab.quiet import quiet_libraries

    quiet_libraries()


@app.command(epilog=examples("svdlab models", "svdlab generate IMAGE --model svd-xt"))
def models() -> None:
    """List the built-in model presets and their defaults, then the upscalers."""
    _quiet_libraries()
    from svdlab.models import PRESETS
    from svdlab.models.upscaler import UPSCALER_PRESETS

    table = Table("name", "defaults", "source and description", show_lines=True)
    table.columns[0].no_wrap = True
    table.columns[2].overflow = "fold"  # hub ids wrap rather than lose their end
    for preset in PRESETS.values():
        defaults = (
            f"{preset.num_frames} frames {preset.width}x{preset.height}",
            f"fps {preset.fps}, {preset.steps} steps",
            f"guidance {preset.min_guidance:g}-{preset.max_guidance:g}",
            f"bucket {preset.motion_bucket_id}, noise {preset.noise_aug_strength:g}",
        )
        source = preset.repo_id or ("shipped (offline)" if preset.shipped else "built-in (offline)")
        table.add_row(
            f"{preset.name}\n(default)" if preset.name == DEFAULT_MODEL else preset.name,
            "\n".join(defaults),
            f"{source}\n{preset.description}",
        )
    for upscaler in UPSCALER_PRESETS.values():
        windows = f"{upscaler.num_frames}-frame windows"
        sampling = f"{upscaler.steps} step(s)\ntemperature {upscaler.temperature:g}"
        defaults = f"{upscaler.scale}x upscaler\n{windows}\n{sampling}"
        table.add_row(upscaler.name, defaults, f"shipped (offline)\n{upscaler.description}")
    out_console.print(table)


@app.command(
    epilog=examples(
        "svdlab generate examples/sprites/scene-1.png --motion-bucket-id 180",
        "svdlab generate photo.png --model svd-xt --device cuda --offload model --format webm --out videos",
    )
)
def generate(
    images: Annotated[list[str], typer.Argument(metavar="IMAGE...", help="Image files or http(s) URLs.")],
    model: Annotated[
        str, typer.Option(metavar="NAME", help="Preset (svdlab models), hub id or local folder.")
    ] = DEFAULT_MODEL,
    motion_bucket_id: Annotated[
        int | None, typer.Option(help="Amount of motion (trained 0..255).", show_default=FROM_MODEL)
    ] = None,
    noise_aug_strength: Annotated[
        float | None,
        typer.Option(help="Noise added to the input (trained ~0.02..0.15).", show_default=FROM_MODEL),
    ] = None,
    fps: Annotated[
        int | None, typer.Option(help="Frame-rate conditioning and playback fps.", show_default=FROM_MODEL)
    ] = None,
    num_frames: Annotated[int | None, typer.Option(help="Frames per video.", show_default=FROM_MODEL)] = None,
    steps: Annotated[int | None, typer.Option(help="Sampler steps.", show_default=FROM_MODEL)] = None,
    min_guidance: Annotated[
        float | None, typer.Option(help="Guidance scale at the first frame.", show_default=FROM_MODEL)
    ] = None,
    max_guidance: Annotated[
        float | None, typer.Option(help="Guidance scale at the last frame.", show_default=FROM_MODEL)
    ] = None,
    seed: Annotated[int, typer.Option(help="Random seed (same frames as diffusers with this seed).")] = 42,
    size: Annotated[
        str | None, typer.Option(metavar="WxH", help="Output size, e.g. 1024x576.", show_default=FROM_MODEL)
    ] = None,
    fit: Annotated[
        str, typer.Option(metavar="MODE", help="How the image meets the size: crop, pad or stretch.")
    ] = "crop",
    decode_chunk_size: Annotated[
        int | None, typer.Option(help="Frames decoded at once (less memory).", show_default=FROM_MODEL)
    ] = None,
    sampler: Annotated[
        str,
        typer.Option(metavar="NAME", help="euler (exact, diffusers'), heun, dpmpp_2m or euler_ancestral."),
    ] = "euler",
    schedule: Annotated[
        str, typer.Option(metavar="NAME", help="Noise levels: karras or exponential.")
    ] = "karras",
    guidance_interval: Annotated[
        str | None,
        typer.Option(
            metavar="START:END",
            help="Guide only steps START..END-1 (0-based step numbers); other steps skip the unguided rows.",
        ),
    ] = None,
    cache_interval: Annotated[
        int,
        typer.Option(help="Run the UNet's deep blocks every N evaluations, reusing them between (1: off)."),
    ] = 1,
    offload: Annotated[
        str, typer.Option(metavar="MODE", help="CPU offload: none, model or sequential.")
    ] = "none",
    forward_chunking: Annotated[bool, typer.Option(help="Chunk the UNet feed-forward layers.")] = False,
    batch_size: Annotated[int | None, typer.Option(help="Videos per UNet call (default: measured).")] = None,
    dtype: Annotated[
        str | None,
        typer.Option(metavar="TYPE", help="float32, float16 or bfloat16 (default: float16 on CUDA)."),
    ] = None,
    device: Annotated[
        str | None, typer.Option(metavar="DEVICE", help="cpu, cuda, cuda:1, mps (default: best found).")
    ] = None,
    variant: Annotated[str | None, typer.Option(help="Weight variant to load, e.g. fp16.")] = None,
    allow_pickle: Annotated[
        bool, typer.Option(help="Allow pickle weights (they can run code; trust them first).")
    ] = False,
    lora: Annotated[
        Path | None, typer.Option(metavar="FILE", help="LoRA file (.safetensors) to apply to the UNet.")
    ] = None,
    lora_scale: Annotated[float, typer.Option(help="Strength of the LoRA (0: none, 1: as trained).")] = 1.0,
    max_pixels: Annotated[
        int | None,
        typer.Option(min=1, help="Largest input image in pixels (default 64 Mi; SVDLAB_MAX_PIXELS)."),
    ] = None,
    format: Annotated[
        str, typer.Option("--format", metavar="TYPE", help="mp4, webm, gif, webp or png.")
    ] = "mp4",
    out: Annotated[Path, typer.Option(metavar="DIR", help="Folder for videos and manifests.")] = Path(
        "outputs"
    ),
    overwrite: Annotated[
        bool, typer.Option(help="Replace a file of the same name that other settings made.")
    ] = False,
    last_frame: Annotated[
        str | None,
        typer.Option(metavar="IMAGE", help="End each video on this image (keyframe inbetweening)."),
    ] = None,
    loop: Annotated[
        bool, typer.Option(help="End each video on its own first image: a seamless loop.")
    ] = False,
    interpolate: Annotated[
        str,
        typer.Option(
            metavar="METHOD|N",
            help="Then interpolate the frames: none, flow, blend or model; 2 or 4: model at that factor.",
        ),
    ] = "none",
    interpolate_factor: Annotated[int, typer.Option(help="New frame rate over the old: 2 or 4.")] = 2,
    upscale: Annotated[
        int, typer.Option(metavar="N", help="Then upscale the frames 2 or 4 times (1: not).")
    ] = 1,
    upscale_method: Annotated[
        str, typer.Option(metavar="NAME", help="model (a learned video upscaler), sr, bicubic or lanczos.")
    ] = "model",
    upscale_model: Annotated[
        str | None,
        typer.Option(
            metavar="NAME", help="Learned upscaler for --upscale-method model (default: the model's)."
        ),
    ] = None,
    sr_model: Annotated[
        Path | None,
        typer.Option(metavar="FILE", help="Super-resolution weights (.safetensors) for --upscale-method sr."),
    ] = None,
    quiet: Annotated[bool, typer.Option(help="No progress bar.")] = False,
) -> None:
    """Turn each IMAGE into a video; several images are batched together; then interpolate and upscale."""
    _quiet_libraries()
    from svdlab.api import generate as generate_videos

    failures: list[str] = []

    def report_bad_image(name: str, error: SvdlabError) -> None:
        failures.append(name)
        print_error(str(error))

    signal.signal(signal.SIGTERM, _interrupt)
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
            sampler=sampler,
            schedule=schedule,
            guidance_interval=guidance_interval,
            cache_interval=cache_interval,
            offload=offload,
            forward_chunking=forward_chunking,
            batch_size=batch_size,
            max_pixels=max_pixels,
            dtype=dtype,
            device=device,
            variant=variant,
            allow_pickle=allow_pickle,
            lora=lora,
            lora_scale=lora_scale,
            format=format,
            out=out,
            overwrite=overwrite,
            progress=not quiet,
            on_image_error=report_bad_image,
            last_frame=last_frame,
            loop=loop,
            interpolate="model" if interpolate in ("2", "4") else interpolate,
            interpolate_factor=int(interpolate) if interpolate in ("2", "4") else interpolate_factor,
            upscale=upscale,
            upscale_method=upscale_method,
            upscale_model=upscale_model,
            sr_model=sr_model,
        )
    except SvdlabError as error:
        raise fail(str(error)) from None
    except KeyboardInterrupt:
        raise fail(f"interrupted; finished videos are in {out}; run the command again for the rest") from None
    if videos and "keyframes" in videos[0].manifest:
        print_line(f"both ends held by {videos[0].manifest['keyframes']['method']} on {model}")
    if videos:
        _warn_if_fallen_back(videos[0].manifest.get("interpolation", {}))
    for video in videos:
        print_line(f"{video.source} -> {video.path}")
    if failures:
        raise typer.Exit(code=2)


@app.command(
    epilog=examples(
        "svdlab sweep examples/motion_bucket_sweep.toml --dry-run",
        "svdlab sweep examples/real/motion_bucket_sweep_svd_xt.toml --model svd-xt --runs-dir runs",
        "svdlab sweep examples/motion_bucket_sweep.toml --ray local --ray-actors 2",
    )
)
def sweep(
    spec: Annotated[Path, typer.Argument(metavar="SPEC.toml", help="Sweep spec (TOML).")],
    dry_run: Annotated[
        bool, typer.Option(help="Print the jobs, packs and estimated time; make nothing.")
    ] = False,
    fresh: Annotated[
        bool, typer.Option(help="Forget this experiment's finished jobs and run all again.")
    ] = False,
    runs_dir: Annotated[
        Path, typer.Option(metavar="DIR", help="Folder holding the store and the videos.")
    ] = Path("runs"),
    model: Annotated[
        str | None,
        typer.Option(metavar="NAME", help="Model to use instead of the spec's `model =` (svdlab models)."),
    ] = None,
    batch_size: Annotated[
        int | None, typer.Option(min=1, help="Videos per UNet call (default: measured).")
    ] = None,
    quiet: Annotated[bool, typer.Option(help="No progress bar.")] = False,
    ray: Annotated[
        str | None,
        typer.Option(
            metavar="ADDRESS",
            help="Run on a Ray cluster: local (start one here), auto (the one `ray start` runs here) or "
            "HOST:PORT. Needs the ray extra.",
        ),
    ] = None,
    ray_actors: Annotated[
        int | None,
        typer.Option(min=1, help="Ray actors, each holding the model (default: one per GPU, else per CPU)."),
    ] = None,
    ray_cpus: Annotated[float, typer.Option(min=0.01, help="CPUs per Ray actor.")] = 1.0,
    ray_gpus: Annotated[
        float | None, typer.Option(min=0, help="GPUs per Ray actor (default: 1 where the cluster has GPUs).")
    ] = None,
) -> None:
    """Run a parameter sweep and write its HTML report; a stopped sweep resumes (finished jobs are kept)."""
    _quiet_libraries()
    from svdlab.experiments.dry_run import dry_run as plan_only
    from svdlab.experiments.report import write_report
    from svdlab.experiments.runner import open_sweep, run_sweep

    signal.signal(signal.SIGTERM, _interrupt)
    try:
        if dry_run:
            planned_only = plan_only(spec, runs_dir, fresh=fresh, batch_size=batch_size, model=model)
            print_line(planned_only.summary())
            return
        if ray is None:
            planned = open_sweep(spec, runs_dir, fresh=fresh, batch_size=batch_size, model=model)
            made = run_sweep(planned, fresh=fresh, progress=not quiet)
        else:
            from svdlab.experiments.ray_runner import RayOptions, driver_placement, run_sweep_on_ray

            options = RayOptions(address=ray, actors=ray_actors, cpus=ray_cpus, gpus=ray_gpus)
            device, dtype = driver_placement()
            planned = open_sweep(spec, runs_dir, fresh, batch_size, model, device=device, dtype=dtype)
            made = run_sweep_on_ray(planned, options, fresh=fresh, progress=not quiet)
        skipped = len(planned.jobs) - len(planned.todo)  # again: a sweep it waited for may have done more
        index = write_report(runs_dir, planned.spec.name)
    except SvdlabError as error:
        raise fail(str(error)) from None
    except KeyboardInterrupt:
        raise fail(
            f"interrupted; finished jobs are saved in {runs_dir}; run the same command to resume"
        ) from None
    print_line(
        f"{planned.spec.name}: {made} videos made, {skipped} already done, "
        f"in {runs_dir / planned.spec.name}; report {index}"
    )


# the options of the commands that make one video from another (interpolate, upscale, extend)
PostOut = Annotated[Path, typer.Option(metavar="DIR", help="Folder for the video and its manifest.")]
PostFormat = Annotated[str, typer.Option("--format", metavar="TYPE", help="mp4, webm, gif, webp or png.")]
PostOverwrite = Annotated[
    bool, typer.Option(help="Replace a video of the same name that another input made.")
]
ModelSeed = Annotated[int, typer.Option(help="Random seed of --method model.")]
ModelSteps = Annotated[
    int | None, typer.Option(help="Sampler steps of --method model.", show_default=FROM_MODEL)
]


@app.command(
    epilog=examples(
        "svdlab interpolate outputs/scene-1.mp4 --factor 2",
        "svdlab interpolate clip.webm --factor 4 --method blend --format gif --out slow",
    )
)
def interpolate(
    video: Annotated[Path, typer.Argument(metavar="VIDEO", help="Video file (mp4, webm, gif).")],
    factor: Annotated[int, typer.Option(help="New frame rate over the old: 2 or 4.")] = 2,
    method: Annotated[
        str,
        typer.Option(
            metavar="NAME",
            help="flow (optical flow both ways), blend (cross-fade) or model (a context model makes them).",
        ),
    ] = "flow",
    model: Annotated[
        str, typer.Option(metavar="NAME", help="The context model for --method model.")
    ] = "demo-context",
    seed: ModelSeed = 42,
    steps: ModelSteps = None,
    out: PostOut = Path("outputs"),
    format: PostFormat = "mp4",
    overwrite: PostOverwrite = False,
    quiet: Annotated[bool, typer.Option(help="No progress bar.")] = False,
) -> None:
    """Make a video smoother: new frames between its frames, by optical flow or a context model."""
    from svdlab.media import VIDEO_FORMATS
    from svdlab.post import INTERPOLATION_METHODS, interpolate_video

    methods = (*INTERPOLATION_METHODS, "model")
    checks = [
        (factor in (2, 4), f"--factor {factor} is not allowed: use 2 or 4"),
        (method in methods, f"--method {method} is not one of {', '.join(methods)}"),
        (format in VIDEO_FORMATS, f"--format {format} is not one of {', '.join(VIDEO_FORMATS)}"),
    ]
    for fine, message in checks:
        if not fine:
            raise fail(message)
    if method == "model":
        _quiet_libraries()
    try:
        made = interpolate_video(video, factor, method, out, format, overwrite, model, seed, steps, not quiet)
    except SvdlabError as error:
        raise fail(str(error)) from None
    _warn_if_fallen_back(made.manifest["made_by"])
    print_line(f"{video} -> {made.path}")


@app.command(
    epilog=examples(
        "svdlab upscale outputs/scene-1.mp4 --scale 2",
        "svdlab upscale clip.mp4 --scale 4 --method sr --sr-model 4x-compact.safetensors --tile 256",
        "svdlab upscale a.mp4 b.mp4 --scale 2 --method lanczos --out big",
    )
)
def upscale(
    videos: Annotated[list[Path], typer.Argument(metavar="VIDEO...", help="Video files (mp4, webm, gif).")],
    scale: Annotated[int, typer.Option(help="New width and height over the old: 2 or 4.")] = 2,
    method: Annotated[
        str,
        typer.Option(
            metavar="NAME",
            help="model (a learned video upscaler), sr (your super-resolution weights), bicubic or lanczos.",
        ),
    ] = "model",
    model: Annotated[
        str, typer.Option(metavar="NAME", help="The learned upscaler for --method model (name or folder).")
    ] = "demo-upscaler",
    sr_model: Annotated[
        Path | None,
        typer.Option(
            metavar="FILE", help="Super-resolution weights for --method sr (any architecture spandrel knows)."
        ),
    ] = None,
    allow_pickle: Annotated[
        bool, typer.Option(help="Allow a pickle --sr-model (.pth; it can run code: trust it first).")
    ] = False,
    tile: Annotated[
        int | None,
        typer.Option(
            metavar="PX", help="Upscale in tiles of at most PX x PX input pixels (default: above 256 / 512)."
        ),
    ] = None,
    stabilise: Annotated[
        float, typer.Option(help="Blend each sr frame with the last along the flow: 0 (off) up to 0.9.")
    ] = 0.0,
    device: Annotated[
        str | None, typer.Option(metavar="DEVICE", help="cpu, cuda, cuda:1 (default: best found).")
    ] = None,
    seed: ModelSeed = 42,
    steps: Annotated[
        int | None, typer.Option(help="Sampler steps of --method model.", show_default="the upscaler's")
    ] = None,
    temperature: Annotated[
        float | None,
        typer.Option(
            help="Starting noise of --method model: 1 as trained, 0 its mean (the same for every seed).",
            show_default="the upscaler's",
        ),
    ] = None,
    out: PostOut = Path("outputs"),
    format: PostFormat = "mp4",
    overwrite: PostOverwrite = False,
) -> None:
    """Make videos larger: a learned video upscaler, your own super-resolution model, or resampling."""
    from svdlab.media import VIDEO_FORMATS

    if format not in VIDEO_FORMATS:
        raise fail(f"--format {format} is not one of {', '.join(VIDEO_FORMATS)}")
    if method in ("model", "sr"):
        _quiet_libraries()
    from svdlab.post.upscale import make_upscaler, upscale_video

    try:
        upscaler = make_upscaler(
            method,
            scale,
            model=model,
            sr_model=sr_model,
            allow_pickle=allow_pickle,
            device=device,
            seed=seed,
            steps=steps,
            tile=tile,
            stabilise=stabilise,
            temperature=temperature,
        )
        for video in videos:
            made = upscale_video(video, upscaler, out, format, overwrite)
            print_line(f"{video} -> {made.path}")
    except SvdlabError as error:
        raise fail(str(error)) from None


@app.command(
    epilog=examples(
        "svdlab extend clip.mp4 --segments 3",
        "svdlab extend clip.mp4 --segments 2 --model demo",
    )
)
def extend(
    video: Annotated[Path, typer.Argument(metavar="VIDEO", help="Video file (mp4, webm, gif).")],
    segments: Annotated[int, typer.Option(help="Generated segments to add.")] = 1,
    model: Annotated[
        str,
        typer.Option(
            metavar="NAME",
            help="A context model continues from the last two frames; a one-frame model from the last.",
        ),
    ] = "demo-context",
    seed: Annotated[
        int, typer.Option(help="Random seed of the first segment (the next: seed + 1, ...).")
    ] = 42,
    steps: Annotated[int | None, typer.Option(help="Sampler steps.", show_default=FROM_MODEL)] = None,
    out: PostOut = Path("outputs"),
    format: PostFormat = "mp4",
    overwrite: PostOverwrite = False,
    quiet: Annotated[bool, typer.Option(help="No progress bar.")] = False,
) -> None:
    """Make a video longer: generated segments that continue from its last frames."""
    from svdlab.media import VIDEO_FORMATS

    if format not in VIDEO_FORMATS:
        raise fail(f"--format {format} is not one of {', '.join(VIDEO_FORMATS)}")
    _quiet_libraries()
    from svdlab.post.continuation import extend_video

    try:
        made = extend_video(video, segments, model, out, format, overwrite, seed, steps, not quiet)
    except SvdlabError as error:
        raise fail(str(error)) from None
    except KeyboardInterrupt:
        raise fail("interrupted; nothing was written; run the command again") from None
    print_line(f"continued by {made.manifest['made_by']['method']}")
    print_line(f"{video} -> {made.path}")


@app.command(
    epilog=examples(
        "svdlab serve",
        "svdlab serve --model svd-xt --device cuda:0,cuda:1 --runs-dir /data/runs",
        "SVDLAB_TOKEN=s3cret svdlab serve --host 0.0.0.0",
    )
)
def serve(
    model: Annotated[
        str, typer.Option(metavar="NAME", help="Preset (svdlab models), hub id or local folder.")
    ] = DEFAULT_MODEL,
    host: Annotated[
        str, typer.Option(metavar="ADDRESS", help="Address to listen on; other than loopback needs --token.")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on (1..65535).")] = 7860,
    runs_dir: Annotated[
        Path, typer.Option(metavar="DIR", help="Folder holding the store, the queue and the videos.")
    ] = Path("runs"),
    token: Annotated[
        str | None,
        typer.Option(
            metavar="SECRET",
            envvar="SVDLAB_TOKEN",
            help="Token every request must carry.",
            show_default=False,
        ),
    ] = None,
    device: Annotated[
        str | None,
        typer.Option(
            metavar="DEVICES", help="Devices, comma-separated, one worker each (default: best found)."
        ),
    ] = None,
    dtype: Annotated[
        str | None,
        typer.Option(metavar="TYPE", help="float32, float16 or bfloat16 (default: float16 on CUDA)."),
    ] = None,
    max_upload_mb: Annotated[float, typer.Option(min=0.01, help="Largest upload in MiB.")] = 25.0,
    max_pixels: Annotated[int, typer.Option(min=1, help="Largest uploaded image in pixels.")] = 16 * 2**20,
    batch_size: Annotated[
        int | None, typer.Option(min=1, help="Videos per UNet call (default: measured).")
    ] = None,
) -> None:
    """Serve the studio: a web page and REST API over a job queue kept in the runs folder's store."""
    try:
        import fastapi  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError:
        raise fail("svdlab serve needs the studio extra: pip install 'svdlab[studio]'") from None
    from svdlab.studio.server import serve as run_server

    devices = [part.strip() for part in device.split(",")] if device else [None]
    try:
        run_server(
            model,
            host,
            port,
            runs_dir,
            token,
            devices,
            dtype,
            int(max_upload_mb * 2**20),
            max_pixels,
            batch_size,
            print_line,
        )
    except SvdlabError as error:
        raise fail(str(error)) from None
    except KeyboardInterrupt:
        raise fail(
            f"interrupted; queued jobs are kept in {runs_dir}; run the same command to go on"
        ) from None


@app.command(
    epilog=examples(
        "svdlab train examples/training/tiny-sprites.toml",
        "accelerate launch -m svdlab train examples/training/lora-sprites.toml --quiet",
    )
)
def train(
    config: Annotated[
        Path, typer.Argument(metavar="CONFIG.toml", help="Training config (TOML); see docs/training.md.")
    ],
    fresh: Annotated[
        bool, typer.Option(help="Delete the run folder (checkpoints, log, validation) and start over.")
    ] = False,
    quiet: Annotated[bool, typer.Option(help="No progress bar.")] = False,
) -> None:
    """Train or fine-tune a model as CONFIG says; resumes from the run's last checkpoint."""
    _quiet_libraries()
    from svdlab.training.trainer import train as run_training

    signal.signal(signal.SIGTERM, _interrupt)
    try:
        result = run_training(config, fresh=fresh, progress=not quiet)
    except SvdlabError as error:
        raise fail(str(error)) from None
    if not result.main_process:
        return
    if result.finished_before:
        print_line(
            f"already finished: all {result.step} steps were trained -> {result.output}; "
            "lengthen a stage to train on, or pass --fresh to start over"
        )
        return
    print_line(f"trained {result.step} steps -> {result.output}")
    for report_path in result.reports[-1:]:
        print_line(f"last validation report: {report_path}")


@app.command(
    epilog=examples("svdlab report motion-bucket-sweep", "svdlab report my-study --runs-dir /data/runs")
)
def report(
    name: Annotated[str, typer.Argument(metavar="NAME", help="Experiment name (svdlab runs list).")],
    runs_dir: Annotated[
        Path, typer.Option(metavar="DIR", help="Folder holding the store and the videos.")
    ] = Path("runs"),
) -> None:
    """Write a static HTML report: videos side by side, a sortable metrics table and plots."""
    from svdlab.experiments.report import write_report

    try:
        path = write_report(runs_dir, name)
    except SvdlabError as error:
        raise fail(str(error)) from None
    print_line(f"report -> {path}")


@app.command(
    "prepare-data",
    epilog=examples(
        "svdlab prepare-data synth --out sprites --size 64x48 --frames 4 --fps 8,4",
        "svdlab prepare-data ~/videos --out clips --size 1024x576 --frames 14 --calibration fit",
    ),
)
def prepare_data(
    videos: Annotated[
        list[Path], typer.Argument(metavar="VIDEO...", help="Video folders (searched recursively) or files.")
    ],
    out: Annotated[Path, typer.Option(metavar="DIR", help="Dataset folder to write.")],
    size: Annotated[str, typer.Option(metavar="WxH", help="Clip size.")] = "64x64",
    frames: Annotated[int, typer.Option(help="Frames per clip.")] = 8,
    fps: Annotated[
        list[str] | None, typer.Option(help="Target clip fps, e.g. 6,12 or repeated; sets strides per video.")
    ] = None,
    stride: Annotated[
        list[str] | None, typer.Option(help="Frame strides, e.g. 1,2 or repeated (default 1).")
    ] = None,
    fit: Annotated[
        str, typer.Option(metavar="MODE", help="How frames meet the size: crop, pad or stretch.")
    ] = "crop",
    calibration: Annotated[
        str, typer.Option(help="Motion buckets: default, fit (to these clips) or a calibration JSON file.")
    ] = "default",
    scene_threshold: Annotated[
        float, typer.Option(help="Colour-histogram change (0..1) that counts as a scene cut.")
    ] = 0.4,
    max_clips_per_scene: Annotated[
        int | None, typer.Option(help="Keep at most this many clips per scene and stride.")
    ] = None,
    overwrite: Annotated[bool, typer.Option(help="Replace a dataset already in --out.")] = False,
    quiet: Annotated[bool, typer.Option(help="No progress bar.")] = False,
) -> None:
    """Cut videos into clips labelled with fps and motion_bucket_id, written as a training dataset."""
    from rich.progress import Progress

    from svdlab.params import parse_size
    from svdlab.training.dataset import find_videos, prepare_dataset

    def report_skip(source: Path, reason: str) -> None:
        print_warning(f"skipped {source}: {reason}")

    try:
        width, height = parse_size(size)
        target_fps, strides = _number_list(fps, float, "--fps"), _number_list(stride, int, "--stride")
        sources = find_videos(videos)
        with Progress(console=err_console, disable=quiet, transient=True) as bar:
            task = bar.add_task("videos", total=len(sources))
            prepared = prepare_dataset(
                sources,
                out,
                width=width,
                height=height,
                frames=frames,
                fps=target_fps,
                strides=strides,
                fit=fit,
                calibration=calibration,
                scene_threshold=scene_threshold,
                max_clips_per_scene=max_clips_per_scene,
                overwrite=overwrite,
                on_skip=report_skip,
                on_video=lambda source, clips: bar.advance(task),
            )
    except SvdlabError as error:
        raise fail(str(error)) from None
    except KeyboardInterrupt:
        raise fail(f"interrupted; {out} is incomplete; run the command again with --overwrite") from None
    if not prepared.clips:
        raise fail(f"no clips written: all {len(prepared.skipped)} videos were skipped (reasons above)")
    print_line(
        f"{len(prepared.clips)} clips -> {prepared.path}; skipped {len(prepared.skipped)} of "
        f"{len(sources)} videos; {prepared.calibration.source} motion calibration"
    )


@app.command(
    epilog=examples("svdlab relabel sprites", "svdlab relabel clips --calibration my-calibration.json")
)
def relabel(
    dataset: Annotated[
        Path, typer.Argument(metavar="DATASET", help="A dataset folder written by prepare-data.")
    ],
    calibration: Annotated[
        str, typer.Option(help="default, fit (to this dataset's scores) or a calibration JSON file.")
    ] = "fit",
) -> None:
    """Relabel a dataset's motion buckets from its stored motion scores (no decoding)."""
    from svdlab.training.dataset import relabel as relabel_dataset

    try:
        used = relabel_dataset(dataset, calibration)
    except SvdlabError as error:
        raise fail(str(error)) from None
    print_line(f"{dataset}: relabelled with the {used.source} motion calibration")


@app.command(
    "synth-data",
    epilog=examples(
        "svdlab synth-data synth --count 48 --size 64x48 --frames 16 --fps 8",
        "svdlab synth-data held-out --count 8 --seed 90000",
    ),
)
def synth_data(
    out: Annotated[Path, typer.Argument(metavar="DIR", help="Folder for the videos and truth.json.")],
    count: Annotated[int, typer.Option(help="Number of videos.")],
    size: Annotated[str, typer.Option(metavar="WxH", help="Video size.")] = "64x64",
    frames: Annotated[int, typer.Option(help="Frames per video.")] = 16,
    fps: Annotated[float, typer.Option(help="Frame rate of the videos.")] = 8,
    seed: Annotated[int, typer.Option(help="Seed of the first video (the next ones count up).")] = 0,
    max_sprites: Annotated[int | None, typer.Option(help="Most sprites per scene (default 4).")] = None,
    max_speed: Annotated[float | None, typer.Option(help="Top speed, widths/frame (default 0.12).")] = None,
    max_pan: Annotated[float | None, typer.Option(help="Top pan, widths/frame (default 0.06).")] = None,
    min_pan: Annotated[float | None, typer.Option(help="Slowest pan, widths/frame (default 0).")] = None,
    pan_probability: Annotated[float | None, typer.Option(help="Share that pan (default 0.4).")] = None,
    still_probability: Annotated[
        float | None, typer.Option(help="Share of still scenes, before any pan (default 0.1).")
    ] = None,
    directions: Annotated[
        str | None,
        typer.Option(metavar="LOW:HIGH", help="Directions of motion, degrees (0 right, 90 down)."),
    ] = None,
    sizes: Annotated[
        str | None,
        typer.Option(metavar="LOW:HIGH", help="Sprite radii, shares of the shorter side (default 0.1:0.25)."),
    ] = None,
    detail: Annotated[
        str | None,
        typer.Option(metavar="LOW:HIGH", help="Background's fine noise, levels (default 25:45)."),
    ] = None,
    backgrounds: Annotated[
        str | None,
        typer.Option(
            metavar="KINDS",
            help="Background kinds, comma-separated (default: noise,stripes,checker,gradient).",
        ),
    ] = None,
    quiet: Annotated[bool, typer.Option(help="No progress bar.")] = False,
) -> None:
    """Write videos of moving sprites with their true motion (truth.json), for demos and tests."""
    from rich.progress import Progress

    from svdlab.params import parse_pair, parse_size
    from svdlab.training.synthetic import SceneRanges, write_synthetic_videos

    try:
        width, height = parse_size(size)
        given = {"max_sprites": max_sprites, "max_speed": max_speed, "max_pan": max_pan}
        given.update(min_pan=min_pan, pan_probability=pan_probability, still_probability=still_probability)
        given["directions"] = None
        if directions is not None:
            complaint = f"directions={directions!r} is not LOW:HIGH degrees, e.g. -30:30"
            given["directions"] = parse_pair(directions, float, complaint)
        if sizes is not None:
            given["sizes"] = parse_pair(sizes, float, f"sizes={sizes!r} is not LOW:HIGH radii, e.g. 0.15:0.2")
        if detail is not None:
            complaint = f"detail={detail!r} is not LOW:HIGH levels, e.g. 5:10"
            given["detail"] = parse_pair(detail, float, complaint)
        if backgrounds is not None:
            given["backgrounds"] = tuple(kind.strip() for kind in backgrounds.split(",") if kind.strip())
        ranges = SceneRanges(**{name: value for name, value in given.items() if value is not None})
        with Progress(console=err_console, disable=quiet, transient=True) as bar:
            task = bar.add_task("videos", total=count)
            records = write_synthetic_videos(
                out,
                count,
                width=width,
                height=height,
                frames=frames,
                fps=fps,
                seed=seed,
                ranges=ranges,
                on_video=lambda record: bar.advance(task),
            )
    except SvdlabError as error:
        raise fail(str(error)) from None
    print_line(f"{len(records)} videos -> {out} (truth.json)")


def _number_list(values: list[str] | None, kind: type, option: str) -> list | None:
    """Numbers from repeated and/or comma-separated option values; None when the option was not given."""
    if not values:
        return None
    try:
        return [kind(part) for value in values for part in value.split(",") if part.strip()]
    except ValueError:
        raise fail(f"{option} {','.join(values)!r} is not a list of numbers, e.g. {option} 6,12") from None


def _interrupt(signum, frame) -> None:
    """Turn SIGTERM into the same clean stop as Ctrl-C."""
    raise KeyboardInterrupt


runs_app = ReadableTyper(
    help="Look at the experiments in a runs folder.",
    epilog=examples("svdlab runs list", "svdlab runs show motion-bucket-sweep"),
    no_args_is_help=True,
)
app.add_typer(runs_app, name="runs")
RUNS_DIR_OPTION = typer.Option(metavar="DIR", help="Folder holding the store.")
NAME_ARGUMENT = typer.Argument(metavar="NAME", help="Experiment name (svdlab runs list).")


@runs_app.command("list", epilog=examples("svdlab runs list", "svdlab runs list --runs-dir /data/runs"))
def runs_list(runs_dir: Annotated[Path, RUNS_DIR_OPTION] = Path("runs")) -> None:
    """List the experiments with their job counts."""
    from svdlab.experiments.store import Store

    try:
        experiments = Store(runs_dir).experiments()
    except SvdlabError as error:
        raise fail(str(error)) from None
    table = Table("experiment", "model", "done", "failed", "updated (UTC)")
    for column in table.columns[:2]:
        column.overflow = "fold"
    for row in experiments:
        updated = row["updated"][:16].replace("T", " ")  # ISO time to the minute
        table.add_row(row["name"], row["model"], str(row["done"] or 0), str(row["failed"] or 0), updated)
    out_console.print(table)


@runs_app.command(
    "show",
    epilog=examples(
        "svdlab runs show motion-bucket-sweep", "svdlab runs show my-study --runs-dir /data/runs"
    ),
)
def runs_show(
    name: Annotated[str, NAME_ARGUMENT], runs_dir: Annotated[Path, RUNS_DIR_OPTION] = Path("runs")
) -> None:
    """Show one experiment's jobs with their swept values and metrics."""
    rows = _experiment_rows(name, runs_dir)
    hidden = ("key", "error", "video", "status")
    columns = list(dict.fromkeys(key for row in rows for key in row if key not in hidden))
    table = Table(*columns)
    for row in rows:
        table.add_row(*(_cell(row.get(column)) for column in columns))
    if (
        Measurement.get(out_console, out_console.options.update_width(10_000), table).maximum
        <= out_console.width
    ):
        out_console.print(table)
        return
    split = columns.index("seed") + 1 if "seed" in columns else 1  # job columns, then metrics
    for row in rows:  # too wide for the terminal: one block per job, its metrics wrapped below it
        heading = [_cell(row.get(columns[0]))] + [f"{c} {_cell(row.get(c))}" for c in columns[1:split]]
        out_console.print("  ".join(heading), style="bold", highlight=False, soft_wrap=True)
        pairs = [f"{column} {_cell(row.get(column))}" for column in columns[split:]]
        for line in _packed(pairs, out_console.width - 4):
            out_console.print(f"    {line}", highlight=False, soft_wrap=True)


@runs_app.command(
    "export",
    epilog=examples(
        "svdlab runs export motion-bucket-sweep --csv results.csv",
        "svdlab runs export my-study --parquet results.parquet --runs-dir /data/runs",
    ),
)
def runs_export(
    name: Annotated[str, NAME_ARGUMENT],
    csv: Annotated[
        Path | None, typer.Option("--csv", metavar="FILE", help="Write the results to this CSV file.")
    ] = None,
    parquet: Annotated[
        Path | None, typer.Option("--parquet", metavar="FILE", help="Write the results to this Parquet file.")
    ] = None,
    runs_dir: Annotated[Path, RUNS_DIR_OPTION] = Path("runs"),
) -> None:
    """Export one experiment's jobs, swept values and metrics as CSV and/or Parquet."""
    from svdlab.experiments.export import export_csv, export_parquet

    if csv is None and parquet is None:
        raise fail("name a file with --csv FILE or --parquet FILE")
    rows = _experiment_rows(name, runs_dir)
    try:
        written = [
            export(rows, path) for export, path in ((export_csv, csv), (export_parquet, parquet)) if path
        ]
    except SvdlabError as error:
        raise fail(str(error)) from None
    for path in written:
        print_line(f"{len(rows)} jobs -> {path}")


def _experiment_rows(name: str, runs_dir: Path) -> list[dict]:
    """The experiment's result rows, or a one-line failure if the store does not know it."""
    from svdlab.experiments.store import Store

    try:
        store = Store(runs_dir)
    except SvdlabError as error:
        raise fail(str(error)) from None
    if store.experiment(name) is None:
        raise fail(f"no experiment {name!r} in {runs_dir}; `svdlab runs list` shows the names")
    return store.results(name)


def _packed(items: list[str], width: int) -> list[str]:
    """Items joined by three spaces into lines of at most `width` characters (an item longer stays whole)."""
    lines: list[str] = []
    for item in items:
        if lines and len(lines[-1]) + 3 + len(item) <= width:
            lines[-1] += f"   {item}"
        else:
            lines.append(item)
    return lines


def _cell(value) -> str:
    if isinstance(value, str) and ("/" in value or "\\" in value):
        return Path(value).name
    if isinstance(value, float):
        return f"{value:.4g}"
    return "" if value is None else str(value)


lora_app = ReadableTyper(
    help="Work with LoRA files.",
    epilog=examples("svdlab lora merge demo lora.safetensors --out demo-merged"),
    no_args_is_help=True,
)
app.add_typer(lora_app, name="lora")


@lora_app.command(
    "merge",
    epilog=examples(
        "svdlab lora merge demo runs/train/lora-sprites/lora.safetensors --out demo-sprites",
        "svdlab lora merge svd-xt my-style.safetensors --out svd-xt-style --scale 0.8 --dtype float16",
    ),
)
def lora_merge(
    model: Annotated[
        str, typer.Argument(metavar="MODEL", help="Preset (svdlab models), hub id or local folder.")
    ],
    lora: Annotated[Path, typer.Argument(metavar="LORA.safetensors", help="LoRA file (.safetensors).")],
    out: Annotated[Path, typer.Option(metavar="DIR", help="New folder for the merged diffusers checkpoint.")],
    scale: Annotated[float, typer.Option(help="Strength of the LoRA to bake in (1: as trained).")] = 1.0,
    dtype: Annotated[str | None, typer.Option(metavar="TYPE", help="float32, float16 or bfloat16.")] = None,
) -> None:
    """Fold a LoRA into MODEL's weights and write a checkpoint that needs no LoRA to load."""
    _quiet_libraries()
    from svdlab.training.lora import save_merged

    try:
        path = save_merged(model, lora, out, scale=scale, dtype=dtype)
    except SvdlabError as error:
        raise fail(str(error)) from None
    print_line(f"{model} + {lora} (scale {scale:g}) -> {path}")
