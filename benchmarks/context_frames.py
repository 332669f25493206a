"""Context frames measured against held-out synthetic sprite videos (seeds from 90,000 on, which no
training run of svdlab uses): continuation, long videos, loops and keyframe inbetweening, by the context
model and by the training-free methods on a one-frame model. (Interpolation: benchmarks/interpolation.py.)

    python benchmarks/context_frames.py [--clips 12] [--context-model demo-context] [--model demo]

prints, in Markdown:
- continuation: mean cosine between the generated and the true optical flow where the truth moves at
  least 0.5 px, after two true frames (context model) or chained on one (one-frame model);
- long videos of 4 segments: flow-compensated warp error across each segment boundary over the mean
  within segments (1 = boundaries look like any other step);
- loops: loop_seam with --loop and without it;
- inbetweening: PSNR of the first and last frames against the keyframes, beside plain image-to-video's
  frame-0 PSNR, and the rank correlation of frame number with the progress from the first keyframe to
  the last (1: every frame is nearer the last keyframe than the one before).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import PIL.Image
from interpolation import held_out_clips

from svdlab.engine import Job, VideoEngine
from svdlab.media.export import frames_to_uint8
from svdlab.metrics.fidelity import psnr
from svdlab.metrics.motion import flow_cosine
from svdlab.metrics.temporal import keyframe_progress, loop_seam, warp_error
from svdlab.models import load_model
from svdlab.params import make_params
from svdlab.post.continuation import continuation_method, continue_frames
from svdlab.post.keyframes import keyframe_method


def generate(engine: VideoEngine, jobs: list[Job]) -> list[np.ndarray]:
    """The jobs' videos as uint8 frames (F, H, W, 3), in job order."""
    made = {id(result.job): frames_to_uint8(result.frames) for result in engine.run(jobs)}
    return [made[id(job)] for job in jobs]


def continuation(model, clips: list[np.ndarray]) -> float:
    """Mean flow cosine of one continued segment against the truth: a context model given true frames 0
    and 1, a one-frame model given frame 1 (its frame k is then the truth's frame k + 1)."""
    params = make_params(seed=0).resolved(model)
    cosines = []
    for number, clip in enumerate(clips):
        start = clip[:2] if model.preset.context else clip[1:2]
        made = continue_frames(start, model, params.model_copy(update={"seed": number}), 1)
        offset = 0 if model.preset.context else 1
        truth = clip[offset : offset + len(made)]
        cosines.append(flow_cosine(made[len(start) - 1 :], truth[len(start) - 1 :]))
    return float(np.nanmean(cosines))


def boundary_ratio(model, clips: list[np.ndarray], segments: int = 4) -> float:
    """Mean over clips of (mean warp error across segment boundaries) / (mean warp error within segments)."""
    params = make_params(seed=0).resolved(model)
    given = 2 if model.preset.context else 1
    added = params.num_frames - given
    ratios = []
    for number, clip in enumerate(clips):
        made = continue_frames(clip[:given], model, params.model_copy(update={"seed": number * 10}), segments)
        errors = [warp_error(made[index : index + 2]) for index in range(given - 1, len(made) - 1)]
        across = [errors[k * added] for k in range(1, segments)]
        within = [error for index, error in enumerate(errors) if index % added]
        ratios.append(np.mean(across) / max(np.mean(within), 1e-9))
    return float(np.mean(ratios))


def loops(model, clips: list[np.ndarray]) -> tuple[float, float]:
    """Mean loop_seam of videos from the clips' first frames with loop (its repeated last frame left out)
    and without."""
    params = make_params(seed=0).resolved(model)
    images = [PIL.Image.fromarray(clip[0]) for clip in clips]
    looped = params.model_copy(update={"loop": True})
    engine = VideoEngine(model)
    with_loop = generate(engine, [Job(image, looped) for image in images])
    plain = generate(engine, [Job(image, params) for image in images])
    return (
        float(np.mean([loop_seam(frames) for frames in with_loop])),
        float(np.mean([loop_seam(frames) for frames in plain])),
    )


def inbetweening(model, clips: list[np.ndarray]) -> dict[str, float]:
    """PSNR of the held frames against the keyframes (true frames 0 and F - 1), plain image-to-video's
    frame-0 PSNR, and the mean rank correlation of frame number with progress between the keyframes."""
    params = make_params(seed=0).resolved(model)
    last = params.num_frames - 1
    engine = VideoEngine(model)
    firsts = [PIL.Image.fromarray(clip[0]) for clip in clips]
    lasts = [PIL.Image.fromarray(clip[last]) for clip in clips]
    held = generate(engine, [Job(a, params, context={0: a, last: b}) for a, b in zip(firsts, lasts)])
    plain = generate(engine, [Job(a, params) for a in firsts])
    progress = [keyframe_progress(frames, clip[0], clip[last]) for frames, clip in zip(held, clips)]
    return {
        "first_psnr": float(np.mean([psnr(f[0], c[0]) for f, c in zip(held, clips)])),
        "last_psnr": float(np.mean([psnr(f[last], c[last]) for f, c in zip(held, clips)])),
        "plain_first_psnr": float(np.mean([psnr(f[0], c[0]) for f, c in zip(plain, clips)])),
        "progress": float(np.mean(progress)),
    }


def main() -> None:
    """Print the tables."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=12)
    parser.add_argument("--context-model", default="demo-context")
    parser.add_argument("--model", default="demo")
    args = parser.parse_args()
    started = time.perf_counter()
    clips = held_out_clips(args.clips, frames=17)
    models = [load_model(args.context_model, device="cpu"), load_model(args.model, device="cpu")]
    print(f"{args.clips} held-out moving sprite videos (64x64); models {args.context_model} and {args.model}")
    print("\n| model | method | continuation flow cosine | 4-segment boundary / within warp error |")
    print("|---|---|---|---|")
    for model in models:
        method = continuation_method(model)
        cosine, ratio = continuation(model, clips), boundary_ratio(model, clips)
        print(f"| {model.name} | {method} | {cosine:.3f} | {ratio:.2f} |")
    print("\n| model | method | loop_seam with --loop | without |")
    print("|---|---|---|---|")
    for model in models:
        method = keyframe_method(model)
        seam, plain = loops(model, clips)
        print(f"| {model.name} | {method} | {seam:.2f} | {plain:.2f} |")
    print("\n| model | method | first frame PSNR | last frame PSNR | plain i2v frame 0 PSNR | progress |")
    print("|---|---|---|---|---|---|")
    for model in models:
        method = keyframe_method(model)
        s = inbetweening(model, clips)
        print(
            f"| {model.name} | {method} | {s['first_psnr']:.2f} | {s['last_psnr']:.2f} | "
            f"{s['plain_first_psnr']:.2f} | {s['progress']:.2f} |"
        )
    print(f"\n{time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
