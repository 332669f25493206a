"""Export an experiment's results (one row per job: image, swept values, seed, metrics) to CSV or Parquet."""

from __future__ import annotations

import csv
from pathlib import Path

from svdlab.errors import SvdlabError
from svdlab.media.atomic import atomic_path


def _columns(rows: list[dict]) -> list[str]:
    return list(dict.fromkeys(key for row in rows for key in row))


def export_csv(rows: list[dict], path: str | Path) -> Path:
    """Write the rows as CSV (a header with every column; missing values left empty)."""
    path = Path(path)
    with atomic_path(path) as temp, open(temp, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=_columns(rows))
        writer.writeheader()
        writer.writerows(rows)
    return path


def export_parquet(rows: list[dict], path: str | Path) -> Path:
    """Write the rows as a Parquet table (needs pyarrow)."""
    try:
        import pyarrow
        import pyarrow.parquet
    except ImportError as error:
        raise SvdlabError('Parquet export needs pyarrow: pip install "svdlab[parquet]"') from error
    path = Path(path)
    columns = _columns(rows)
    table = pyarrow.table({column: [row.get(column) for row in rows] for column in columns})
    with atomic_path(path) as temp:
        pyarrow.parquet.write_table(table, temp)
    return path
