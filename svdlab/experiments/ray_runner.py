"""The Ray runner: a sweep's jobs on Ray actors, each holding one loaded model; the driver's store stays the
single record of what is done.

The driver plans the sweep as the local runner does, groups the remaining jobs by pack key into units of
at most `unit_size` jobs and hands each unit to an idle actor. The actor runs the unit through its own
`VideoEngine` (which packs and sizes batches for its device) and streams back each video as soon as it is
finished: the encoded file, the manifest and the metrics. The driver writes the file and records the job
before it takes the next result, so a video is lost only if it was never received. When an actor dies
(its process killed, its node lost), the jobs of its unit that had not come back go to another actor,
at most `tries` times in all; a job that raises fails with its error. Ctrl-C kills the actors; what was
recorded stays and a rerun makes only the rest.
"""

from __future__ import annotations

import os
import socket
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from svdlab.engine.batching import group_jobs, split
from svdlab.errors import SvdlabError
from svdlab.experiments.planner import PlannedJob, model_identity
from svdlab.experiments.runner import (
    Sweep,
    TrackedVideo,
    claimed,
    describe_video,
    record_video,
)
from svdlab.experiments.trackers import make_trackers
from svdlab.media.manifest import save_encoded
from svdlab.post.cascade import Upscalers
from svdlab.progress import generation_progress

INSTALL_HINT = 'pip install -e ".[ray]" (or pip install ray)'
UNIT_SIZE = 4
TRIES = 3
READY_SECONDS = 300.0
CONNECT_SECONDS = 5.0


class RayError(SvdlabError):
    """Ray is missing, the cluster cannot be reached or lacks what the sweep needs."""


@dataclass
class RayOptions:
    """Where and how to run: the cluster address (`local` starts one on this machine, `auto` joins the one
    started here with `ray start`), how many actors, CPUs and GPUs per actor (None: one actor per GPU on a
    GPU cluster, else one per `cpus`), jobs per unit and tries per unit."""

    address: str = "local"
    actors: int | None = None
    cpus: float = 1.0
    gpus: float | None = None
    unit_size: int = UNIT_SIZE
    tries: int = TRIES

    def __post_init__(self) -> None:
        for name in ("actors", "unit_size", "tries"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise RayError(f"{name}={value} is not allowed: use 1 or more")
        if self.cpus <= 0 or (self.gpus is not None and self.gpus < 0):
            raise RayError(
                f"cpus={self.cpus}, gpus={self.gpus} per actor are not allowed: use cpus > 0, gpus >= 0"
            )


@dataclass
class _Unit:
    """Jobs one actor runs in one call, and how many times they were handed out."""

    jobs: list[PlannedJob]
    tries: int = 0


@dataclass
class _Running:
    """A unit on an actor: the stream of its results and the jobs not back yet."""

    actor: object
    unit: _Unit
    pending: dict = field(default_factory=dict)


class SweepWorker:
    """A Ray actor's body: one loaded model and engine; runs units of jobs and streams back their videos."""

    def __init__(self, model: str, device: str | None, dtype: str | None, batch_size: int | None):
        from svdlab.engine import VideoEngine
        from svdlab.models import load_model
        from svdlab.quiet import quiet_libraries

        quiet_libraries()
        self.error = None
        try:
            self.model = load_model(model, device=device, dtype=dtype)
            self.engine = VideoEngine(self.model, batch_size=batch_size)
            self.upscalers = Upscalers(str(self.model.device))
        except SvdlabError as error:
            self.error = str(error)

    def ready(self) -> dict:
        """This worker's model identity, or the error that kept it from loading the model."""
        if self.error is not None:
            return {"error": self.error}
        return {"identity": model_identity(self.model)}

    def run(self, spec, jobs: list[PlannedJob]):
        """Yield (job key, encoded files, manifest, this process's id) for each job's video as soon as it is
        finished."""
        from svdlab.media import encode_video

        if self.error is not None:
            raise SvdlabError(self.error)
        for result in self.engine.run([job.engine_job() for job in jobs]):
            job = result.job.tag
            pixels, manifest = describe_video(self.model, spec, job, result, self.upscalers)
            yield (
                job.key,
                encode_video(pixels, manifest["output"]["fps"], spec.outputs.format),
                manifest,
                os.getpid(),
            )


def run_sweep_on_ray(
    sweep: Sweep,
    options: RayOptions | None = None,
    fresh: bool = False,
    progress: bool = True,
    on_video: Callable[[int, TrackedVideo], None] | None = None,
) -> int:
    """Run the sweep's remaining jobs on Ray actors; returns how many videos were made.

    `on_video(worker_pid, video)` is called after each video is recorded (and logged to the spec's
    trackers).
    """
    options = options or RayOptions()
    ray = _import_ray()
    started = _connect(ray, options.address)
    actors: list = []
    try:
        with claimed(sweep, fresh):
            if not sweep.todo:
                return 0
            sweep.store.start_experiment(
                sweep.spec.name, sweep.spec.model_dump(), sweep.model.name, fresh=fresh
            )
            gpus = _gpus_per_actor(ray, options)
            count = _actor_count(ray, options, gpus)
            worker = ray.remote(SweepWorker)
            new_actor = _actor_factory(ray, worker, sweep, options, gpus)
            actors.extend(new_actor() for _ in range(count))
            _check_ready(ray, actors, sweep, options, gpus)
            units = [
                _Unit(unit)
                for group in group_jobs(sweep.todo).values()
                for unit in split(group, options.unit_size)
            ]
            steps = sum(job.params.steps for job in sweep.todo)
            trackers = make_trackers(sweep.spec, sweep.model.name)

            def recorded(pid: int, tracked: TrackedVideo) -> None:
                for tracker in trackers:
                    tracker.log_video(tracked)
                if on_video is not None:
                    on_video(pid, tracked)

            try:
                with generation_progress(steps, len(sweep.todo), progress) as bar:
                    return _dispatch(ray, sweep, units, actors, new_actor, options, bar, recorded)
            finally:
                for tracker in trackers:
                    tracker.close()
    finally:
        for actor in actors:
            ray.kill(actor)
        if started:
            ray.shutdown()


def _dispatch(ray, sweep, units, actors, new_actor, options, bar, recorded) -> int:
    """Hand units to idle actors and record results as they stream in, until every job is done or failed."""
    queue, idle, running = deque(units), list(actors), {}
    made = 0
    while queue or running:
        while queue and idle:
            actor, unit = idle.pop(), queue.popleft()
            unit.tries += 1
            stream = actor.run.options(num_returns="streaming").remote(sweep.spec, unit.jobs)
            running[stream] = _Running(actor, unit, {job.key: job for job in unit.jobs})
        ready, _ = ray.wait(list(running), num_returns=1)
        stream = ready[0]
        task = running[stream]
        try:
            key, files, manifest, pid = ray.get(next(stream))
        except StopIteration:
            del running[stream]
            idle.append(task.actor)
            continue
        except ray.exceptions.RayActorError as error:
            del running[stream]
            actors.remove(task.actor)
            replacement = new_actor()
            actors.append(replacement)
            idle.append(replacement)
            _retry_or_fail(sweep, queue, task, options, f"its Ray worker died: {_first_line(error)}")
            continue
        except ray.exceptions.RayTaskError as error:
            del running[stream]
            idle.append(task.actor)
            _fail(sweep, task.pending.values(), _first_line(error.cause or error))
            continue
        job = task.pending.pop(key)
        target = sweep.folder / manifest["output"]["file"]
        tracked = record_video(sweep, job, save_encoded(files, target, manifest), manifest)
        made += 1
        for _ in range(job.params.steps):
            bar.step()
        bar.video()
        recorded(pid, tracked)
    return made


def _retry_or_fail(sweep: Sweep, queue: deque, task: _Running, options: RayOptions, reason: str) -> None:
    """Send a dead actor's unfinished jobs to another actor, or fail them once the unit has had its tries."""
    remaining = list(task.pending.values())
    if not remaining:
        return
    if task.unit.tries < options.tries:
        queue.append(_Unit(remaining, task.unit.tries))
    else:
        _fail(sweep, remaining, f"{reason} ({task.unit.tries} tries)")


def _fail(sweep: Sweep, jobs, reason: str) -> None:
    """Record jobs as failed with their reason."""
    for job in jobs:
        sweep.store.record_failed(sweep.spec.name, job, sweep.model.name, reason)


def _first_line(error: BaseException) -> str:
    """The first non-empty line of an error's text."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return lines[0] if lines else type(error).__name__


def driver_placement() -> tuple[str, str]:
    """Where the driver keeps its copy of the model (it only plans): the CPU, in the dtype a local run here
    would use, so that job keys match a local run's (Ray is checked first: a missing extra fails before any
    model loads)."""
    from svdlab.models.loading import default_device, resolve_dtype

    _import_ray()
    return "cpu", str(resolve_dtype(None, default_device())).removeprefix("torch.")


def _import_ray():
    """The ray module, or a one-line RayError naming the extra to install."""
    try:
        import ray
    except ImportError:
        raise RayError(f"--ray needs Ray, which is not installed: {INSTALL_HINT}") from None
    return ray


def _connect(ray, address: str) -> bool:
    """Join or start the cluster; True when this call started it (and so must shut it down). A process that
    is already connected (its own `ray.init`) keeps that connection, whatever the address."""
    if ray.is_initialized():
        return False
    quiet = {"log_to_driver": False, "configure_logging": False}
    if address == "local":
        ray.init(address="local", include_dashboard=False, **quiet)
        return True
    if address != "auto":
        _check_reachable(address)
    try:
        ray.init(address=address, **quiet)
    except ConnectionError as error:
        hint = "start one with `ray start --head`, or use --ray local"
        raise RayError(f"no Ray cluster at {address}: {_first_line(error)}; {hint}") from None
    return False


def _check_reachable(address: str) -> None:
    """Fail in a few seconds, not minutes, when nothing listens at a HOST:PORT cluster address."""
    host_port = address.removeprefix("ray://")
    host, _, port = host_port.rpartition(":")
    if not host or not port.isdigit():
        raise RayError(
            f"--ray {address} is not a cluster address: use local, auto, HOST:PORT or ray://HOST:PORT"
        )
    try:
        socket.create_connection((host, int(port)), timeout=CONNECT_SECONDS).close()
    except OSError as error:
        raise RayError(
            f"cannot reach a Ray cluster at {address} ({error.strerror or error}): check the address and "
            "that `ray start --head` runs there"
        ) from None


def _gpus_per_actor(ray, options: RayOptions) -> float:
    """GPUs each actor asks for: as given, else one on a cluster that has GPUs."""
    if options.gpus is not None:
        return options.gpus
    return 1.0 if ray.cluster_resources().get("GPU", 0) >= 1 else 0.0


def _actor_count(ray, options: RayOptions, gpus: float) -> int:
    """How many actors: as given, else as many as the cluster's GPUs (or CPUs) hold; at least one."""
    resources = ray.cluster_resources()
    cpus, gpus_there = resources.get("CPU", 0.0), resources.get("GPU", 0.0)
    if options.cpus > cpus or gpus > gpus_there:
        raise RayError(
            f"each Ray actor asks for {options.cpus:g} CPUs and {gpus:g} GPUs, but the whole cluster has "
            f"{cpus:g} CPUs and {gpus_there:g} GPUs: lower --ray-cpus, or add nodes"
        )
    if options.actors is not None:
        return options.actors
    fits = int(gpus_there // gpus) if gpus else int(cpus // options.cpus)
    return max(1, fits)


def _actor_factory(ray, worker, sweep: Sweep, options: RayOptions, gpus: float) -> Callable[[], object]:
    """A function that starts one more actor holding the sweep's model, on a GPU when it has one."""
    model = sweep.model
    device = "cuda" if gpus else "cpu"
    dtype = str(model.dtype).removeprefix("torch.")
    location = sweep.spec.model
    if Path(location).exists():  # a folder: the same absolute path on every node
        location = str(Path(location).resolve())
    batch_size = sweep.engine.batch_size

    def start():
        return worker.options(num_cpus=options.cpus, num_gpus=gpus, max_restarts=0).remote(
            location, device, dtype, batch_size
        )

    return start


def _check_ready(ray, actors: list, sweep: Sweep, options: RayOptions, gpus: float) -> None:
    """Wait for the actors to load the model; fail in one line when they cannot start or load another one."""
    started = time.monotonic()
    try:
        answers = ray.get([actor.ready.remote() for actor in actors], timeout=READY_SECONDS)
    except ray.exceptions.RayActorError as error:
        reason = _first_line(error)
        raise RayError(f"a Ray actor died while loading model {sweep.model.name}: {reason}") from None
    except ray.exceptions.GetTimeoutError:
        raise RayError(
            f"{len(actors)} Ray actors with {options.cpus:g} CPUs and {gpus:g} GPUs each did not start "
            f"within {time.monotonic() - started:.0f} s: the cluster lacks the resources; lower "
            "--ray-actors or --ray-cpus"
        ) from None
    expected = model_identity(sweep.model)
    for answer in answers:
        if "error" in answer:
            raise RayError(
                f"the Ray workers cannot load model {sweep.model.name}: {answer['error']}; install it on "
                "every node at the same path (or use a preset name)"
            )
        if answer["identity"] != expected:
            raise RayError(
                f"model {sweep.model.name} on the Ray workers is not the driver's ({answer['identity']} vs "
                f"{expected}): make the nodes hold the same weights"
            )
