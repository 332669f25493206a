"""The studio's job queue: a table in the runs folder's store, so a submitted job outlives the server.

A job is a queue row before its submit request returns. Workers claim rows in submission order; a row goes
queued -> running -> done | failed, or to cancelled. The video and its metrics are recorded in the store's
jobs, videos and metrics tables exactly as a sweep records them, so a row whose (experiment, key) is done
there is done, whatever the queue row says: a server killed between the two writes redoes nothing.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from pathlib import Path

from svdlab.experiments.store import Store, store_error
from svdlab.timestamps import utc_now

SCHEMA = """
CREATE TABLE IF NOT EXISTS queue (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    experiment TEXT NOT NULL,
    key TEXT NOT NULL,
    image TEXT NOT NULL,
    file TEXT NOT NULL,
    params TEXT NOT NULL,
    swept TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('queued', 'running', 'done', 'failed', 'cancelled')),
    error TEXT,
    submitted TEXT NOT NULL,
    started TEXT,
    finished TEXT,
    worker TEXT,
    UNIQUE (experiment, key)
);
CREATE INDEX IF NOT EXISTS queue_status ON queue (status, id);
CREATE TABLE IF NOT EXISTS studio_settings (name TEXT PRIMARY KEY, value TEXT NOT NULL);
"""
ALREADY_DONE = (  # queued rows whose video the store already holds (a sweep or an earlier run made it)
    "UPDATE queue SET status = 'done', finished = (SELECT finished FROM jobs j WHERE j.experiment = "
    "queue.experiment AND j.key = queue.key) WHERE status = 'queued' AND EXISTS (SELECT 1 FROM jobs j "
    "WHERE j.experiment = queue.experiment AND j.key = queue.key AND j.status = 'done')",
    (),
)


class JobQueue:
    """The queue table of one runs folder; each thread gets its own SQLite connection."""

    def __init__(self, runs_dir: str | Path):
        self.runs_dir = Path(runs_dir)
        self._local = threading.local()
        self.claim_lock = threading.Lock()  # workers of one server claim one at a time
        self.store.connection.executescript(SCHEMA)

    @property
    def store(self) -> Store:
        """This thread's store connection."""
        store = getattr(self._local, "store", None)
        if store is None:
            store = self._local.store = Store(self.runs_dir)
        return store

    def _execute(self, sql: str, args: tuple = ()) -> sqlite3.Cursor:
        try:
            return self.store.connection.execute(sql, args)
        except sqlite3.Error as error:
            raise store_error(self.store.path, error) from error

    def add(self, experiment: str, spec: dict, model: str, rows: list[dict]) -> list[int]:
        """Record the experiment and queue its jobs in one transaction; jobs already queued or done under
        the same key are not queued again. Returns the ids of the experiment's rows for these keys."""
        now = utc_now()
        statements = [self.store.experiment_row(experiment, spec, model)]
        for row in rows:
            statements.append(
                (
                    "INSERT INTO queue (experiment, key, image, file, params, swept, status, submitted) "
                    "VALUES (?, ?, ?, ?, ?, ?, 'queued', ?) ON CONFLICT(experiment, key) DO UPDATE SET "
                    "status = 'queued', error = NULL, submitted = excluded.submitted, started = NULL, "
                    "finished = NULL WHERE queue.status IN ('failed', 'cancelled')",
                    (
                        experiment,
                        row["key"],
                        row["image"],
                        row["file"],
                        json.dumps(row["params"]),
                        json.dumps(row["swept"]),
                        now,
                    ),
                )
            )
        statements.append(ALREADY_DONE)
        self.store.transaction(statements)
        keys = [row["key"] for row in rows]
        found = self._execute(
            f"SELECT id, key FROM queue WHERE experiment = ? AND key IN ({','.join('?' * len(keys))})",
            (experiment, *keys),
        ).fetchall()
        ids = {row["key"]: row["id"] for row in found}
        return [ids[key] for key in keys]

    def recover(self) -> None:
        """After a restart: running rows go back to the queue, and rows the store holds as done are done."""
        self.store.transaction(
            [
                ("UPDATE queue SET status = 'queued', started = NULL WHERE status = 'running'", ()),
                ALREADY_DONE,
            ]
        )

    def queued(self, limit: int) -> list[sqlite3.Row]:
        """The oldest queued rows."""
        return self._execute(
            "SELECT * FROM queue WHERE status = 'queued' ORDER BY id LIMIT ?", (limit,)
        ).fetchall()

    def claim(self, ids: list[int], worker: str) -> list[int]:
        """Mark the rows running on `worker` if still queued; returns those claimed."""
        now = utc_now()
        claimed = []
        for job_id in ids:
            cursor = self._execute(
                "UPDATE queue SET status = 'running', started = ?, worker = ? "
                "WHERE id = ? AND status = 'queued'",
                (now, worker, job_id),
            )
            if cursor.rowcount:
                claimed.append(job_id)
        return claimed

    def finish(self, job_id: int, status: str, error: str | None = None) -> bool:
        """Mark a running row done or failed (not one cancelled meanwhile); True if it was marked."""
        cursor = self._execute(
            "UPDATE queue SET status = ?, error = ?, finished = ? WHERE id = ? AND status = 'running'",
            (status, error, utc_now(), job_id),
        )
        return bool(cursor.rowcount)

    def requeue(self, ids: list[int]) -> None:
        """Put running rows back in the queue (their pack was stopped before they finished)."""
        for job_id in ids:
            self._execute(
                "UPDATE queue SET status = 'queued', started = NULL WHERE id = ? AND status = 'running'",
                (job_id,),
            )

    def cancel(self, job_id: int) -> tuple[bool, str | None]:
        """Cancel a queued or running row: whether this call cancelled it, and its status now (None if there
        is no such row)."""
        cursor = self._execute(
            "UPDATE queue SET status = 'cancelled', finished = ? WHERE id = ? AND status IN "
            "('queued', 'running')",
            (utc_now(), job_id),
        )
        row = self._execute("SELECT status FROM queue WHERE id = ?", (job_id,)).fetchone()
        return bool(cursor.rowcount), None if row is None else row["status"]

    def status_of(self, ids: list[int]) -> dict[int, str]:
        """The current status of each row."""
        if not ids:
            return {}
        rows = self._execute(
            f"SELECT id, status FROM queue WHERE id IN ({','.join('?' * len(ids))})", tuple(ids)
        )
        return {row["id"]: row["status"] for row in rows}

    def jobs(
        self,
        experiment: str | None = None,
        status: str | None = None,
        job_id: int | None = None,
        recent: int | None = None,
    ) -> list[dict]:
        """Queue rows in submission order with their video and metrics once done; `recent` keeps the active
        rows and only that many of the latest finished ones."""
        where, args = [], []
        for column, value in (("q.experiment", experiment), ("q.status", status), ("q.id", job_id)):
            if value is not None:
                where.append(f"{column} = ?")
                args.append(value)
        if recent is not None:
            where.append(
                "(q.status IN ('queued', 'running') OR q.id IN (SELECT id FROM queue WHERE status IN "
                "('done', 'failed', 'cancelled') ORDER BY finished DESC, id DESC LIMIT ?))"
            )
            args.append(recent)
        sql = (
            "SELECT q.*, v.path AS video FROM queue q LEFT JOIN videos v ON v.experiment = q.experiment AND "
            f"v.key = q.key {'WHERE ' + ' AND '.join(where) if where else ''} ORDER BY q.id"
        )
        rows = self._execute(sql, tuple(args)).fetchall()
        metrics: dict[tuple[str, str], dict[str, float]] = {}
        keys: dict[str, list[str]] = {}
        for row in rows:
            if row["video"]:
                keys.setdefault(row["experiment"], []).append(row["key"])
        for experiment_name, done in keys.items():
            for metric in self._execute(
                f"SELECT key, name, value FROM metrics WHERE experiment = ? AND key IN "
                f"({','.join('?' * len(done))})",
                (experiment_name, *done),
            ):
                metrics.setdefault((experiment_name, metric["key"]), {})[metric["name"]] = metric["value"]
        return [
            {
                "id": row["id"],
                "experiment": row["experiment"],
                "key": row["key"],
                "image": row["image"],
                "params": json.loads(row["params"]),
                "swept": json.loads(row["swept"]),
                "status": row["status"],
                "error": row["error"],
                "submitted": row["submitted"],
                "started": row["started"],
                "finished": row["finished"],
                "worker": row["worker"],
                "video": row["video"],
                "metrics": metrics.get((row["experiment"], row["key"]), {}),
            }
            for row in rows
        ]

    def counts(self) -> dict[str, dict[str, int]]:
        """Queued and running rows per experiment."""
        counts: dict[str, dict[str, int]] = {}
        for row in self._execute(
            "SELECT experiment, status, COUNT(*) AS n FROM queue WHERE status IN ('queued', 'running') "
            "GROUP BY experiment, status"
        ):
            counts.setdefault(row["experiment"], {})[row["status"]] = row["n"]
        return counts

    def studio_experiments(self) -> set[str]:
        """Names of the experiments submitted through the studio."""
        return {row["experiment"] for row in self._execute("SELECT DISTINCT experiment FROM queue")}

    def paused(self) -> bool:
        """Whether the queue is paused (kept across restarts)."""
        row = self._execute("SELECT value FROM studio_settings WHERE name = 'paused'").fetchone()
        return row is not None and row["value"] == "1"

    def set_paused(self, paused: bool) -> None:
        """Pause or resume the queue."""
        self._execute(
            "INSERT INTO studio_settings (name, value) VALUES ('paused', ?) "
            "ON CONFLICT(name) DO UPDATE SET value = excluded.value",
            ("1" if paused else "0",),
        )
