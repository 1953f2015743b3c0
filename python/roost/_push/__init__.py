"""The push engine: validate, scan, check, upload, publish (``client.roosts.push``).

This package is the engine's one entry point: callers import :func:`push_directory` and the
public shapes from here, never from its modules. ``push_directory`` is resolved on first use, so
importing the shapes (as ``import roost`` does) does not load the engine, its HTTP/1.1 transport
or its storage client.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .types import (
    DiscoverProgress,
    HashProgress,
    ProgressCallback,
    PushOptions,
    PushPlan,
    PushProgressCheckMissing,
    PushProgressEvent,
    PushProgressPublish,
    PushProgressUpload,
    PushResult,
    PushSourceNotADirectoryError,
    PushSourceNotFoundError,
    PushStats,
    UnportablePath,
    UnportablePathError,
)

if TYPE_CHECKING:
    from .engine import push_directory

__all__ = [
    "DiscoverProgress",
    "HashProgress",
    "ProgressCallback",
    "PushOptions",
    "PushPlan",
    "PushProgressCheckMissing",
    "PushProgressEvent",
    "PushProgressPublish",
    "PushProgressUpload",
    "PushResult",
    "PushSourceNotADirectoryError",
    "PushSourceNotFoundError",
    "PushStats",
    "UnportablePath",
    "UnportablePathError",
    "push_directory",
]


def __getattr__(name: str) -> Any:
    if name == "push_directory":
        # not cached in this module's namespace: the import system's module table stays the
        # one place that says which engine runs (tests substitute it there)
        from .engine import push_directory

        return push_directory
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
