"""Public shapes of a push: options, result, stats and progress events.

Re-exported from ``roost.resources.roosts`` (the documented import path) and ``roost``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal

from ..chunker import DiscoverProgress, HashProgress

__all__ = [
    "DiscoverProgress",
    "HashProgress",
    "ProgressCallback",
    "PushOptions",
    "PushProgressCheckMissing",
    "PushProgressEvent",
    "PushProgressPublish",
    "PushProgressUpload",
    "PushResult",
    "PushStats",
]


@dataclass(frozen=True, slots=True)
class PushProgressCheckMissing:
    total: int
    missing: int
    phase: Literal["check-missing"] = "check-missing"


@dataclass(frozen=True, slots=True)
class PushProgressUpload:
    uploaded: int
    total: int
    phase: Literal["upload"] = "upload"


@dataclass(frozen=True, slots=True)
class PushProgressPublish:
    attempt: int
    phase: Literal["publish"] = "publish"


PushProgressEvent = (
    DiscoverProgress | HashProgress | PushProgressCheckMissing | PushProgressUpload | PushProgressPublish
)
ProgressCallback = Callable[[PushProgressEvent], Awaitable[None] | None]


@dataclass(slots=True)
class PushOptions:
    site_id: str
    name: str | None = None
    targets: list[str] | None = None
    extract_path: str | None = None
    description: str | None = None
    on_progress: ProgressCallback | None = None
    ignore: Sequence[str] = field(default_factory=tuple)
    concurrency: int = 8
    dry_run: bool = False


@dataclass(frozen=True, slots=True)
class PushStats:
    file_count: int
    total_bytes: int
    total_chunks: int
    unique_chunks: int
    uploaded_chunks: int
    empty_files: int = 0
    uploaded_bytes: int = 0


@dataclass(frozen=True, slots=True)
class PushResult:
    version_id: str
    version_number: int
    current_version_id: str
    previous_version_id: str | None
    stats: PushStats
