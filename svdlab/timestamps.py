"""Timestamps as the store and the manifests write them."""

from __future__ import annotations

from datetime import datetime, timezone


def utc_now() -> str:
    """The time now in UTC, ISO 8601 to the second."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
