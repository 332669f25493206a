"""The studio's FastAPI app: the REST API over the queue and the store, the event stream, the page, and
the runs folder's files."""

from __future__ import annotations

import asyncio
import json
import threading
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated
from urllib.parse import quote

from fastapi import FastAPI, File, HTTPException, Request, UploadFile
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, PlainTextResponse, StreamingResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from svdlab.errors import OutputError, SvdlabError
from svdlab.experiments.explain import METRIC_NOTES
from svdlab.experiments.report import plots_html, read_manifests, sections, write_report
from svdlab.experiments.spec import SweepSpec
from svdlab.experiments.store import DATABASE
from svdlab.media.atomic import remove_stale_temps
from svdlab.media.manifest import manifest_path
from svdlab.studio.knobs import model_knobs
from svdlab.studio.queue import JobQueue
from svdlab.studio.security import Guard
from svdlab.studio.submit import (
    UPLOADS,
    check_spec,
    plan_submission,
    read_spec,
    save_upload,
    spec_toml,
    upload_path,
)
from svdlab.studio.worker import Progress, QueueWorker

STATIC = Path(__file__).parent / "static"
RECENT = 50  # finished jobs the event stream carries besides the active ones
KEEPALIVE_SECONDS = 15.0
POLL_SECONDS = 0.25


@dataclass
class Studio:
    """What the app serves: the runs folder, its queue, the loaded models (one worker each) and limits."""

    runs_dir: Path
    models: list
    token: str | None = None
    max_upload_bytes: int = 25 * 2**20
    max_pixels: int = 16 * 2**20
    batch_size: int | None = None
    progress: Progress = field(default_factory=Progress)
    wake: threading.Event = field(default_factory=threading.Event)
    workers: list[QueueWorker] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.runs_dir = Path(self.runs_dir).resolve()
        self.queue = JobQueue(self.runs_dir)

    @property
    def model(self):
        """The model submissions are planned for (every worker holds the same)."""
        return self.models[0]

    def start(self) -> None:
        """Put back what a stopped server left running or half-written, then start one worker per model."""
        remove_stale_temps(self.runs_dir)
        self.queue.recover()
        self.workers = [
            QueueWorker(
                self.queue, model, self.batch_size, self.progress, self.wake, f"studio-worker-{index}"
            )
            for index, model in enumerate(self.models)
        ]
        for worker in self.workers:
            worker.start()

    def stop(self) -> None:
        """Stop the workers; their unfinished jobs stay queued."""
        for worker in self.workers:
            worker.stop()
        for worker in self.workers:
            worker.join()

    def changed(self) -> None:
        """Wake the workers and the event streams."""
        self.wake.set()
        self.progress.touch()


class JobRequest(BaseModel):
    """One video: an image (upload id or URL), its parameters, and optionally the experiment to add it to."""

    model_config = ConfigDict(extra="forbid")

    image: str = Field(min_length=1, max_length=2048)
    params: dict = Field(default_factory=dict)
    experiment: str | None = None


def create_app(studio: Studio) -> FastAPI:
    """The app serving `studio`; its workers start and stop with the app."""

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        studio.start()
        try:
            yield
        finally:
            await run_in_threadpool(studio.stop)

    app = FastAPI(title="svdlab studio", version="1", lifespan=lifespan, docs_url=None, redoc_url=None)
    app.middleware("http")(Guard(studio.token, studio.max_upload_bytes + 2**20))
    _add_error_handlers(app)
    queue = studio.queue

    @app.get("/", include_in_schema=False)
    def page() -> FileResponse:
        return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})

    @app.get("/docs", include_in_schema=False)
    def docs() -> FileResponse:  # FastAPI's own pages load their scripts from a CDN; this one does not
        return FileResponse(STATIC / "docs.html", headers={"Cache-Control": "no-cache"})

    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/api/model", summary="The model, its device, the output formats and every parameter")
    def model() -> dict:
        return model_knobs(studio.model)

    @app.post("/api/images", status_code=201, summary="Upload an image (multipart field 'file')")
    def upload(file: Annotated[UploadFile, File()]) -> dict:
        data = file.file.read(studio.max_upload_bytes + 1)
        if len(data) > studio.max_upload_bytes:
            raise HTTPException(413, f"the image is over {studio.max_upload_bytes} bytes; send a smaller one")
        saved = save_upload(studio.runs_dir, data, file.filename or "image", studio.max_pixels)
        return {**saved, "url": f"/api/images/{saved['id']}"}

    @app.get("/api/images/{upload_id}", summary="An uploaded image (PNG)")
    def image(upload_id: str) -> FileResponse:
        path = upload_path(studio.runs_dir, upload_id)
        if not path.is_file():
            raise HTTPException(404, f"no image {upload_id}; upload it to /api/images")
        return FileResponse(path, media_type="image/png")

    @app.post("/api/spec.toml", response_class=PlainTextResponse, summary="A JSON spec as sweep TOML")
    async def to_toml(request: Request) -> str:
        body = await request.body()
        spec = await run_in_threadpool(_checked_spec, studio, body, "application/json")
        return spec_toml(spec)

    @app.post("/api/sweeps", status_code=201, summary="Queue a sweep spec (TOML, or JSON)")
    async def submit_sweep(request: Request) -> dict:
        body = await request.body()
        content_type = request.headers.get("content-type", "")
        spec = await run_in_threadpool(_checked_spec, studio, body, content_type)
        return await run_in_threadpool(_submit, studio, spec)

    @app.post("/api/jobs", status_code=201, summary="Queue one video")
    def submit_job(job: JobRequest) -> dict:
        data = {"images": [job.image], "fixed": job.params}
        if job.experiment is not None:
            data["name"] = job.experiment
        return _submit(studio, _checked(studio, data))

    @app.get("/api/jobs", summary="Queued, running and finished jobs in submission order")
    def jobs(experiment: str | None = None, status: str | None = None) -> dict:
        found = queue.jobs(experiment=experiment, status=status)
        return {"jobs": _with_progress(found, studio.progress, studio.runs_dir), "paused": queue.paused()}

    @app.get("/api/jobs/{job_id}", summary="One job")
    def job(job_id: int) -> dict:
        return _one_job(studio, job_id)

    @app.post("/api/jobs/{job_id}/cancel", summary="Cancel a queued or running job")
    def cancel(job_id: int) -> dict:
        cancelled, status = queue.cancel(job_id)
        if status is None:
            raise HTTPException(404, f"no job {job_id}; list them at /api/jobs")
        if not cancelled:
            raise HTTPException(409, f"job {job_id} is already {status}; only queued or running jobs cancel")
        studio.changed()
        return _one_job(studio, job_id)

    @app.post("/api/queue/pause", summary="Finish the running pack, then start no more")
    def pause() -> dict:
        queue.set_paused(True)
        studio.changed()
        return {"paused": True}

    @app.post("/api/queue/resume", summary="Start taking jobs again")
    def resume() -> dict:
        queue.set_paused(False)
        studio.changed()
        return {"paused": False}

    @app.get("/api/events", summary="Server-sent 'queue' events: the active and recent jobs on every change")
    async def events(request: Request) -> StreamingResponse:
        async def stream():
            seen, quiet = -1, 0.0
            while not await request.is_disconnected():
                version = studio.progress.version
                if version != seen:
                    seen, quiet = version, 0.0
                    snapshot = await run_in_threadpool(_snapshot, studio)
                    yield f"event: queue\ndata: {json.dumps(snapshot)}\n\n"
                elif quiet >= KEEPALIVE_SECONDS:
                    quiet = 0.0
                    yield ": keepalive\n\n"
                await asyncio.sleep(POLL_SECONDS)
                quiet += POLL_SECONDS

        return StreamingResponse(
            stream(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"}
        )

    @app.get("/api/experiments", summary="Every experiment of the runs folder, sweeps of the CLI included")
    def experiments() -> dict:
        counts, ours = queue.counts(), queue.studio_experiments()
        return {
            "experiments": [
                {
                    **row,
                    "done": row["done"] or 0,
                    "failed": row["failed"] or 0,
                    "queued": counts.get(row["name"], {}).get("queued", 0),
                    "running": counts.get(row["name"], {}).get("running", 0),
                    "source": "studio" if row["name"] in ours else "sweep",
                }
                for row in queue.store.experiments()
            ]
        }

    @app.get("/api/experiments/{name}", summary="An experiment's spec and results with their videos")
    def experiment(name: str) -> dict:
        record = _experiment(studio, name)
        rows = queue.store.results(name)
        swept, _, metrics = sections(record, rows)
        manifests = read_manifests(rows, studio.runs_dir)
        return {
            "name": name,
            "model": record["model"],
            "spec": record["spec"],
            "swept": swept,
            "metrics": metrics,
            "metric_notes": {metric: _metric_note(metric) for metric in metrics},
            "results": [_result(studio, row, manifests.get(row["key"])) for row in rows],
        }

    @app.get("/api/experiments/{name}/spec.toml", response_class=PlainTextResponse, summary="Its sweep TOML")
    def experiment_spec(name: str) -> str:
        return spec_toml(SweepSpec(**_experiment(studio, name)["spec"]))

    @app.get("/api/experiments/{name}/plots", response_class=PlainTextResponse, summary="Its plots (SVG)")
    def plots(name: str) -> PlainTextResponse:
        _experiment(studio, name)
        try:
            fragment = plots_html(studio.runs_dir, name)
        except SvdlabError:  # nothing finished yet: no plots
            fragment = ""
        return PlainTextResponse(fragment, media_type="text/html")

    @app.post("/api/experiments/{name}/report", summary="Write the static HTML report; returns its URL")
    def report(name: str) -> dict:
        _experiment(studio, name)
        index = write_report(studio.runs_dir, name)
        return {"url": _file_url(studio, index)}

    @app.get("/files/{path:path}", include_in_schema=False)
    def files(path: str) -> FileResponse:
        return FileResponse(_runs_file(studio, path))

    return app


def _add_error_handlers(app: FastAPI) -> None:
    """Every refusal is a 4xx with one line {"error": ...}."""

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, error: RequestValidationError) -> JSONResponse:
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"] if part != "body") or "request"
        message = " ".join(str(first["msg"]).split())
        return JSONResponse({"error": f"{where}: {message}"}, status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, error: StarletteHTTPException) -> JSONResponse:
        return JSONResponse(
            {"error": str(error.detail)}, status_code=error.status_code, headers=error.headers
        )

    @app.exception_handler(SvdlabError)
    async def refused(request: Request, error: SvdlabError) -> JSONResponse:
        status = 503 if isinstance(error, OutputError) else 400
        return JSONResponse({"error": " ".join(str(error).split())}, status_code=status)


def _checked_spec(studio: Studio, body: bytes, content_type: str) -> SweepSpec:
    return _checked(studio, read_spec(body, content_type))


def _checked(studio: Studio, data: dict) -> SweepSpec:
    """A spec checked against this server's model, uploads and limits."""
    return check_spec(data, studio.runs_dir, studio.model, studio.max_pixels, studio.max_upload_bytes)


def _submit(studio: Studio, spec: SweepSpec) -> dict:
    """Plan a checked spec and queue its jobs; returns the experiment, its jobs and any warnings."""
    submission = plan_submission(spec, studio.model, studio.runs_dir)
    ids = studio.queue.add(
        submission.experiment, spec.model_dump(mode="json"), studio.model.name, submission.rows
    )
    studio.changed()
    jobs = [job for job in studio.queue.jobs(experiment=submission.experiment) if job["id"] in set(ids)]
    return {
        "experiment": submission.experiment,
        "jobs": _with_progress(jobs, studio.progress, studio.runs_dir),
        "warnings": submission.warnings,
    }


def _one_job(studio: Studio, job_id: int) -> dict:
    found = studio.queue.jobs(job_id=job_id)
    if not found:
        raise HTTPException(404, f"no job {job_id}; list them at /api/jobs")
    return _with_progress(found, studio.progress, studio.runs_dir)[0]


def _snapshot(studio: Studio) -> dict:
    """What an event carries: the active and recent jobs, the pause state and the queue's ETA."""
    jobs = _with_progress(studio.queue.jobs(recent=RECENT), studio.progress, studio.runs_dir)
    etas = [job["eta_s"] for job in jobs if job["eta_s"] is not None]
    return {"jobs": jobs, "paused": studio.queue.paused(), "eta_s": max(etas) if etas else None}


def _with_progress(jobs: list[dict], progress: Progress, runs_dir: Path) -> list[dict]:
    """Jobs with their step, steps, ETA (from the measured seconds per job step) and video URL."""
    per_step = progress.seconds_per_job_step
    running = max(len(progress.steps), 1)  # the jobs of the running packs share each step
    elapsed_ahead = 0.0
    for job in jobs:
        steps = job["params"].get("steps") or 0
        step, steps = progress.steps.get(job["id"], (0, steps))
        eta = None
        if per_step is not None and job["status"] == "running":
            eta = (steps - step) * per_step * running
            elapsed_ahead = max(elapsed_ahead, eta)
        elif per_step is not None and job["status"] == "queued":
            elapsed_ahead += steps * per_step
            eta = elapsed_ahead
        job.update(step=step, steps=steps, eta_s=eta, **_file_urls(runs_dir, job.pop("video")))
    return jobs


def _file_urls(runs_dir: Path, video: str | None) -> dict:
    """The URLs of a video (file or folder of frames, relative to the runs folder) and of its manifest."""
    if not video:
        return {"video_url": None, "manifest_url": None}
    manifest = manifest_path(runs_dir / video).relative_to(runs_dir).as_posix()
    return {"video_url": f"/files/{quote(video)}", "manifest_url": f"/files/{quote(manifest)}"}


def _experiment(studio: Studio, name: str) -> dict:
    record = studio.queue.store.experiment(name)
    if record is None:
        raise HTTPException(404, f"no experiment {name!r}; list them at /api/experiments")
    return record


def _metric_note(metric: str) -> str:
    note = METRIC_NOTES.get(metric)
    if note is None:
        return ""
    return note.meaning + (f" ({note.better} is better)" if note.better else "")


def _result(studio: Studio, row: dict, manifest: dict | None) -> dict:
    """A result row with the URLs of its video and manifest and of the input image as the model saw it."""
    row.update(_file_urls(studio.runs_dir, row.pop("video", None)))
    fitted = (manifest or {}).get("image", {}).get("fitted_file")
    row["input_url"] = _file_url(studio, manifest["_folder"] / fitted) if fitted else None
    return row


def _file_url(studio: Studio, path: Path) -> str:
    return "/files/" + quote(path.relative_to(studio.runs_dir).as_posix())


def _runs_file(studio: Studio, path: str) -> Path:
    """A file inside the runs folder that may be served: not the store, not a hidden file, nothing outside."""
    root = studio.runs_dir.resolve()
    target = (root / path).resolve()
    if not target.is_relative_to(root):
        raise HTTPException(404, "no such file in the runs folder")
    parts = target.relative_to(root).parts
    if not parts or parts[0].startswith(DATABASE) or any(part.startswith(".") for part in parts):
        raise HTTPException(404, "no such file in the runs folder")
    if parts[0] == UPLOADS or not target.is_file():
        raise HTTPException(404, "no such file in the runs folder")
    return target
