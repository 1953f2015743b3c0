"""How a push shows its progress: a live display on a terminal, plain lines elsewhere."""

from __future__ import annotations

import sys
import time
from typing import TYPE_CHECKING, TextIO

from ..resources.roosts import (
    DiscoverProgress,
    HashProgress,
    PushProgressCheckMissing,
    PushProgressEvent,
    PushProgressPublish,
    PushProgressUpload,
)

if TYPE_CHECKING:
    from rich.console import Console
    from rich.progress import Progress, TaskID


def human_bytes(count: float) -> str:
    value = float(count)
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if abs(value) < 1000 or unit == "TB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    raise AssertionError("unreachable")


def _upload_bytes(event: PushProgressUpload) -> tuple[int, int] | None:
    return (event.bytes_uploaded, event.bytes_total) if event.bytes_total > 0 else None


class PlainView:
    """One line per phase change, throttled to about one a second in between (CI logs)."""

    def __init__(self, stream: TextIO | None = None, *, interval_s: float = 1.0) -> None:
        self._stream = stream or sys.stderr
        self._interval_s = interval_s
        self._last_line_at = 0.0
        self._upload_started_at: float | None = None

    def _say(self, text: str, *, throttle: bool = False) -> None:
        now = time.monotonic()
        if throttle and now - self._last_line_at < self._interval_s:
            return
        self._last_line_at = now
        print(f"roost: {text}", file=self._stream, flush=True)

    def __call__(self, event: PushProgressEvent) -> None:
        if isinstance(event, DiscoverProgress):
            self._say(f"found {event.file_count} files ({human_bytes(event.total_bytes)})")
        elif isinstance(event, HashProgress):
            final = event.files_done == event.files_total and not event.file
            self._say(
                f"hashing {event.files_done}/{event.files_total} files "
                f"({human_bytes(event.bytes_done)} of {human_bytes(event.bytes_total)})",
                throttle=not final,
            )
        elif isinstance(event, PushProgressCheckMissing):
            stored = event.total - event.missing
            self._say(f"checked {event.total} chunks: {event.missing} to upload, {stored} already stored")
            self._upload_started_at = time.monotonic()
        elif isinstance(event, PushProgressUpload):
            final = event.uploaded == event.total
            text = f"uploaded {event.uploaded}/{event.total} chunks"
            sizes = _upload_bytes(event)
            if sizes is not None:
                elapsed = time.monotonic() - (self._upload_started_at or time.monotonic())
                rate = sizes[0] / elapsed if elapsed > 0 else 0.0
                text += f" ({human_bytes(sizes[0])} of {human_bytes(sizes[1])}, {human_bytes(rate)}/s)"
            self._say(text, throttle=not final)
        elif isinstance(event, PushProgressPublish):
            self._say(f"publishing again (attempt {event.attempt + 1})")

    def close(self) -> None:
        return None


class TerminalView:
    """A live rich display: hashing, checking, uploading (rate and ETA), publishing."""

    def __init__(self, console: Console) -> None:
        from rich.progress import (
            BarColumn,
            Progress,
            SpinnerColumn,
            TaskProgressColumn,
            TextColumn,
            TimeRemainingColumn,
        )

        self._progress: Progress = Progress(
            SpinnerColumn(),
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            TaskProgressColumn(),
            TextColumn("{task.fields[detail]}"),
            TimeRemainingColumn(),
            console=console,
            transient=False,
        )
        self._progress.start()
        self._hash_task: TaskID | None = None
        self._upload_task: TaskID | None = None

    def __call__(self, event: PushProgressEvent) -> None:
        progress = self._progress
        if isinstance(event, DiscoverProgress):
            self._hash_task = progress.add_task(
                "hashing", total=max(event.total_bytes, 1), detail=f"{event.file_count} files"
            )
        elif isinstance(event, HashProgress) and self._hash_task is not None:
            progress.update(
                self._hash_task,
                completed=event.bytes_done if event.bytes_total else 1,
                detail=f"{event.files_done}/{event.files_total} files, "
                f"{human_bytes(event.bytes_done)} of {human_bytes(event.bytes_total)}",
            )
        elif isinstance(event, PushProgressCheckMissing):
            stored = event.total - event.missing
            progress.add_task(
                "checking",
                total=1,
                completed=1,
                detail=f"{event.missing} of {event.total} chunks needed, {stored} already stored",
            )
            if event.missing:
                self._upload_task = progress.add_task("uploading", total=event.missing, detail="")
        elif isinstance(event, PushProgressUpload) and self._upload_task is not None:
            detail = f"{event.uploaded}/{event.total} chunks"
            sizes = _upload_bytes(event)
            if sizes is not None:
                progress.update(self._upload_task, total=sizes[1], completed=sizes[0])
                speed = progress.tasks[self._upload_task].speed or 0.0
                detail += f", {human_bytes(sizes[0])} of {human_bytes(sizes[1])}, {human_bytes(speed)}/s"
            else:
                progress.update(self._upload_task, completed=event.uploaded)
            progress.update(self._upload_task, detail=detail)
        elif isinstance(event, PushProgressPublish):
            progress.add_task("publishing", total=1, completed=0, detail=f"attempt {event.attempt + 1}")

    def close(self) -> None:
        self._progress.stop()
