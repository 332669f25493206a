"""The studio's queue worker: one thread per loaded model, taking queued jobs in order through VideoEngine.

Each round it reads the oldest queued rows of every submission, lets the engine pack them, and runs the pack
that holds the oldest job, so compatible jobs of different requests share UNet calls. Every video is written,
measured and recorded the way a sweep records it before its row is marked done. Cancelling a job of the
running pack, or stopping the server, stops the pack at its next step and puts the pack's other unfinished
jobs back in the queue; pausing lets the running pack finish and starts no other.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from svdlab.engine import VideoEngine
from svdlab.errors import SvdlabError
from svdlab.experiments.planner import PlannedJob
from svdlab.experiments.runner import Sweep, describe_video, record_video
from svdlab.experiments.spec import SweepSpec
from svdlab.media.manifest import save_video
from svdlab.post.cascade import Upscalers
from svdlab.studio.queue import JobQueue
from svdlab.studio.submit import job_from_row

LOG = logging.getLogger("svdlab.studio")
LOOKAHEAD = 64  # queued rows the engine may pack from at a time
IDLE_SECONDS = 0.5


class _PackStopped(Exception):
    """The running pack was stopped (a job of it cancelled, or the server stopping)."""


@dataclass
class Progress:
    """What the workers are doing, for the status API: steps of running jobs, seconds per step."""

    steps: dict[int, tuple[int, int]] = field(default_factory=dict)  # job id -> (step, steps)
    seconds_per_job_step: float | None = None  # a pack's time over its steps and jobs, over the last packs
    version: int = 0
    changed: threading.Condition = field(default_factory=threading.Condition)

    def touch(self) -> None:
        """Note a change, waking whoever waits for one."""
        with self.changed:
            self.version += 1
            self.changed.notify_all()


class QueueWorker(threading.Thread):
    """Runs queued jobs on one model until stopped."""

    def __init__(
        self,
        queue: JobQueue,
        model,
        batch_size: int | None,
        progress: Progress,
        wake: threading.Event,
        name: str,
    ):
        super().__init__(name=name, daemon=True)
        self.queue = queue
        self.model = model
        self.engine = VideoEngine(model, batch_size=batch_size)
        self.upscalers = Upscalers(str(model.device))
        self.progress = progress
        self.wake = wake
        self.stopping = threading.Event()
        self.label = f"{name} ({model.device})"
        self._planned: dict[int, PlannedJob] = {}  # queued rows already loaded, by id

    def stop(self) -> None:
        """Stop after the current step; its pack's unfinished jobs go back to the queue."""
        self.stopping.set()
        self.wake.set()

    def run(self) -> None:
        """Take packs until stopped."""
        try:
            while not self.stopping.is_set():
                try:
                    idle = self.queue.paused() or not self._run_next()
                except SvdlabError as error:  # the store cannot be written (disk full, say): wait, retry
                    LOG.error("%s: %s; retrying", self.name, error)
                    idle = True
                if idle:
                    self.wake.wait(IDLE_SECONDS)
                    self.wake.clear()
        finally:
            self.queue.store.close()

    def _run_next(self) -> bool:
        """Claim and run the pack holding the oldest queued job; False when nothing is queued."""
        with self.queue.claim_lock:
            rows = self.queue.queued(LOOKAHEAD)
            if not rows:
                return False
            planned: dict[int, tuple] = {}  # job id -> (row, planned job), oldest first
            for row in rows:
                try:
                    job = self._planned.get(row["id"]) or job_from_row(row, self.queue.runs_dir)
                    planned[row["id"]] = (row, job)
                except SvdlabError as error:  # its upload was deleted, say: the others still run
                    self._fail_now(row["id"], str(error))
            self._planned = {job_id: job for job_id, (_, job) in planned.items()}
            if not planned:
                return True
            by_job = {id(job): job_id for job_id, (_, job) in planned.items()}
            oldest = next(iter(planned.values()))[1]
            try:
                packs = self.engine.plan([job.engine_job() for _, job in planned.values()])
            except Exception as error:  # noqa: BLE001 - e.g. out of memory while sizing: fail the oldest
                self._fail_now(by_job[id(oldest)], " ".join(str(error).split()) or type(error).__name__)
                return True
            pack = next(p for p in packs if any(job.tag is oldest for job in p))
            claimed = set(self.queue.claim([by_job[id(job.tag)] for job in pack], self.label))
        pack = [job for job in pack if by_job[id(job.tag)] in claimed]
        if pack:
            self._run_pack(pack, by_job, planned)
        return True

    def _fail_now(self, job_id: int, message: str) -> None:
        """Record a queued job as failed without running it."""
        if self.queue.claim([job_id], self.label):
            self.queue.finish(job_id, "failed", message)

    def _run_pack(self, pack: list, ids: dict[int, int], planned: dict) -> None:
        """Run one claimed pack, recording each video as it comes."""
        pack_ids = [ids[id(job.tag)] for job in pack]
        steps = pack[0].params.steps
        for job_id in pack_ids:
            self.progress.steps[job_id] = (0, steps)
        self.progress.touch()
        finished: set[int] = set()
        started = time.perf_counter()
        try:
            for result in self.engine.run_pack(pack, on_step=self._on_step(pack_ids, steps)):
                job_id = ids[id(result.job.tag)]
                if self.queue.status_of([job_id])[job_id] == "running":  # not cancelled while decoding
                    self._record(planned[job_id][0], result)
                    self.queue.finish(job_id, "done")
                finished.add(job_id)
                self.progress.steps.pop(job_id, None)
                self.progress.touch()
        except _PackStopped:
            pass
        except Exception as error:  # noqa: BLE001 - any failure of a pack is recorded on its jobs
            message = " ".join(str(error).split()) or type(error).__name__
            for job_id in pack_ids:
                if job_id not in finished:
                    self.queue.finish(job_id, "failed", message)
                    finished.add(job_id)
        else:
            measured = (time.perf_counter() - started) / (max(steps, 1) * len(pack))
            last = self.progress.seconds_per_job_step
            self.progress.seconds_per_job_step = measured if last is None else 0.5 * (last + measured)
        finally:
            self.queue.requeue([job_id for job_id in pack_ids if job_id not in finished])
            for job_id in pack_ids:
                self.progress.steps.pop(job_id, None)
            self.progress.touch()

    def _on_step(self, pack_ids: list[int], steps: int) -> Callable[[], None]:
        """A step callback that advances the pack's progress and stops it when asked to."""

        def on_step() -> None:
            for job_id in pack_ids:
                step, _ = self.progress.steps.get(job_id, (0, steps))
                self.progress.steps[job_id] = (step + 1, steps)
            self.progress.touch()
            if self.stopping.is_set() or "cancelled" in self.queue.status_of(pack_ids).values():
                raise _PackStopped

        return on_step

    def _record(self, row, result) -> None:
        """Write, measure and record one finished video as a sweep would (with the experiment's spec as it
        is now: a later submission to it may have changed the output format)."""
        spec = SweepSpec(**self.queue.store.experiment(row["experiment"])["spec"])
        sweep = Sweep(spec, self.model, [], self.queue.store, [], self.engine)
        job = result.job.tag
        pixels, manifest = describe_video(self.model, spec, job, result, self.upscalers)
        target = sweep.folder / manifest["output"]["file"]
        path = save_video(pixels, manifest["output"]["fps"], spec.outputs.format, target, manifest)
        record_video(sweep, job, path, manifest)
