"""The run store: one SQLite database (WAL) per runs folder with experiments, jobs, videos and metrics.

A job's row is written in one transaction after its video and manifest are on disk, so a row never
points at a missing file; several sweeps may write to one store at once.
"""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path

from svdlab.errors import OutputError
from svdlab.timestamps import utc_now

DATABASE = "svdlab.db"
BUSY_SECONDS = 30
SCHEMA = """
CREATE TABLE IF NOT EXISTS experiments (
    name TEXT PRIMARY KEY,
    spec TEXT NOT NULL,
    model TEXT NOT NULL,
    created TEXT NOT NULL,
    updated TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS jobs (
    experiment TEXT NOT NULL REFERENCES experiments(name) ON DELETE CASCADE,
    key TEXT NOT NULL,
    image TEXT NOT NULL,
    params TEXT NOT NULL,
    swept TEXT NOT NULL,
    seed INTEGER NOT NULL,
    model TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('done', 'failed')),
    error TEXT,
    timings TEXT,
    finished TEXT NOT NULL,
    PRIMARY KEY (experiment, key)
);
CREATE TABLE IF NOT EXISTS videos (
    experiment TEXT NOT NULL,
    key TEXT NOT NULL,
    path TEXT NOT NULL,
    manifest TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    PRIMARY KEY (experiment, key),
    FOREIGN KEY (experiment, key) REFERENCES jobs(experiment, key) ON DELETE CASCADE
);
CREATE TABLE IF NOT EXISTS metrics (
    experiment TEXT NOT NULL,
    key TEXT NOT NULL,
    name TEXT NOT NULL,
    value REAL,
    PRIMARY KEY (experiment, key, name),
    FOREIGN KEY (experiment, key) REFERENCES jobs(experiment, key) ON DELETE CASCADE
);
"""


def _use_wal(connection: sqlite3.Connection) -> None:
    """Switch the database to WAL, retrying while another process does the same: SQLite answers that
    switch with "database is locked" at once, without waiting out the busy timeout."""
    deadline = time.monotonic() + BUSY_SECONDS
    while True:
        try:
            connection.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as error:
            if "locked" not in str(error) or time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def store_error(path: Path, error: Exception) -> OutputError:
    """The one-line OutputError for a store that cannot be opened or written: where, why, what to do."""
    if isinstance(error, OSError):
        from svdlab.media.atomic import write_error  # here, not at the top: `runs list` starts without numpy

        return write_error(path, error)
    text = " ".join(str(error).split())
    if "full" in text or getattr(error, "sqlite_errorname", "") == "SQLITE_FULL":
        return OutputError(
            f"cannot record in {path}: the disk is full ({text}); free space and run the same command "
            "again (finished work is kept)"
        )
    if "readonly" in text or "read-only" in text:
        advice = "make the runs folder writable or choose another --runs-dir"
    elif "locked" in text:
        advice = "another process holds it; wait for it or choose another --runs-dir"
    else:
        advice = "check that --runs-dir is a writable folder on a local disk"
    return OutputError(f"cannot use the store {path} ({text}); {advice}")


class Store:
    """The SQLite store of one runs folder; a failure to open or write it raises OutputError."""

    def __init__(self, runs_dir: str | Path):
        self.runs_dir = Path(runs_dir)
        self.path = self.runs_dir / DATABASE
        try:
            self.runs_dir.mkdir(parents=True, exist_ok=True)
            self.connection = sqlite3.connect(self.path, timeout=BUSY_SECONDS, isolation_level=None)
            self.connection.row_factory = sqlite3.Row
            _use_wal(self.connection)
            self.connection.execute("PRAGMA foreign_keys=ON")
            self.connection.executescript(SCHEMA)
        except (OSError, sqlite3.Error) as error:
            raise store_error(self.path, error) from error

    def close(self) -> None:
        """Close the database."""
        self.connection.close()

    def transaction(self, statements: list[tuple[str, tuple]]) -> None:
        """Run statements atomically (BEGIN IMMEDIATE waits for other writers); all or nothing."""
        cursor = self.connection.cursor()
        try:
            cursor.execute("BEGIN IMMEDIATE")
            try:
                for sql, args in statements:
                    cursor.execute(sql, args)
                cursor.execute("COMMIT")
            except BaseException:
                if self.connection.in_transaction:
                    cursor.execute("ROLLBACK")
                raise
        except sqlite3.Error as error:
            raise store_error(self.path, error) from error

    def start_experiment(self, name: str, spec: dict, model: str, fresh: bool = False) -> None:
        """Record an experiment (replacing its rows when fresh)."""
        statements = [("DELETE FROM experiments WHERE name = ?", (name,))] if fresh else []
        self.transaction([*statements, self.experiment_row(name, spec, model)])

    @staticmethod
    def experiment_row(name: str, spec: dict, model: str) -> tuple[str, tuple]:
        """The statement that records an experiment (its spec and model replaced if it exists)."""
        now = utc_now()
        return (
            "INSERT INTO experiments (name, spec, model, created, updated) VALUES (?, ?, ?, ?, ?) "
            "ON CONFLICT(name) DO UPDATE SET spec = excluded.spec, model = excluded.model, "
            "updated = excluded.updated",
            (name, json.dumps(spec), model, now, now),
        )

    def finished_keys(self, experiment: str) -> set[str]:
        """Keys of the experiment's jobs that are done."""
        rows = self.connection.execute(
            "SELECT key FROM jobs WHERE experiment = ? AND status = 'done'", (experiment,)
        )
        return {row["key"] for row in rows}

    def record_done(
        self, experiment: str, job, manifest: dict, video: dict, metrics: dict[str, float]
    ) -> None:
        """Record a finished job with its video and metrics in one transaction."""
        statements = [
            self._job_row(experiment, job, manifest["model"]["name"], "done", None, manifest["timings"]),
            (
                "INSERT OR REPLACE INTO videos (experiment, key, path, manifest, sha256) "
                "VALUES (?, ?, ?, ?, ?)",
                (experiment, job.key, video["path"], video["manifest"], video["sha256"]),
            ),
            ("DELETE FROM metrics WHERE experiment = ? AND key = ?", (experiment, job.key)),
        ]
        statements += [
            (
                "INSERT INTO metrics (experiment, key, name, value) VALUES (?, ?, ?, ?)",
                (experiment, job.key, name, value),
            )
            for name, value in metrics.items()
        ]
        self.transaction(statements)

    def record_failed(self, experiment: str, job, model: str, error: str) -> None:
        """Record a job that failed, with its error."""
        self.transaction([self._job_row(experiment, job, model, "failed", error, {})])

    @staticmethod
    def _job_row(experiment: str, job, model: str, status: str, error, timings: dict) -> tuple[str, tuple]:
        return (
            "INSERT OR REPLACE INTO jobs (experiment, key, image, params, swept, seed, model, status, error, "
            "timings, finished) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                experiment,
                job.key,
                job.source,
                json.dumps(job.params.model_dump()),
                json.dumps(job.swept),
                job.params.seed,
                model,
                status,
                error,
                json.dumps(timings),
                utc_now(),
            ),
        )

    def experiments(self) -> list[dict]:
        """Every experiment with its job counts."""
        rows = self.connection.execute(
            "SELECT e.name, e.model, e.updated, "
            "SUM(j.status = 'done') AS done, SUM(j.status = 'failed') AS failed "
            "FROM experiments e LEFT JOIN jobs j ON j.experiment = e.name "
            "GROUP BY e.name ORDER BY e.updated DESC, e.rowid DESC"
        )
        return [dict(row) for row in rows]

    def results(self, experiment: str) -> list[dict]:
        """One flat row per job of the experiment: image, swept values, parameters, video, metrics."""
        jobs = self.connection.execute(
            "SELECT j.*, v.path, v.sha256 FROM jobs j LEFT JOIN videos v USING (experiment, key) "
            "WHERE j.experiment = ? ORDER BY j.image, j.finished, j.rowid",
            (experiment,),
        ).fetchall()
        metrics: dict[str, dict[str, float]] = {}
        for row in self.connection.execute(
            "SELECT key, name, value FROM metrics WHERE experiment = ?", (experiment,)
        ):
            metrics.setdefault(row["key"], {})[row["name"]] = row["value"]
        return [
            {
                "key": row["key"],
                "image": row["image"],
                **json.loads(row["swept"]),
                "seed": row["seed"],
                "status": row["status"],
                "error": row["error"],
                "video": row["path"],
                **metrics.get(row["key"], {}),
            }
            for row in jobs
        ]

    def experiment(self, name: str) -> dict | None:
        """An experiment's spec (as a dict), model name and times, or None if the store has no such name."""
        row = self.connection.execute("SELECT * FROM experiments WHERE name = ?", (name,)).fetchone()
        return None if row is None else {**dict(row), "spec": json.loads(row["spec"])}
