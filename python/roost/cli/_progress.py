"""How a push or a pull shows its progress: a live display on a terminal, plain lines elsewhere.

Both views take the same events. At ``discover`` they also report what the walk skipped (on
stderr, above the live display): the user must see it even when the push then succeeds.
"""

from __future__ import annotations

import sys
import time
from typing import TYPE_CHECKING, Protocol, TextIO

from roost.resources.roosts import (
    DiscoverProgress,
    HashProgress,
    PullProgressDiscover,
    PullProgressDownload,
    PullProgressEvent,
    PullProgressPlan,
    PushProgressCheckMissing,
    PushProgressEvent,
    PushProgressPublish,
    PushProgressUpload,
)

from ._output import count_skipped, human_bytes, human_duration, plural, skipped_line, skipped_lines

if TYPE_CHECKING:
    from rich.console import Console, RenderableType
    from rich.progress import Progress, ProgressColumn, Task, TaskID

__all__ = ["PlainView", "ProgressView", "TerminalView", "make_view"]

ProgressEvent = PushProgressEvent | PullProgressEvent


class ProgressView(Protocol):
    def __call__(self, event: ProgressEvent) -> None: ...

    def close(self, ok: bool = True) -> None: ...


def make_view(*, quiet: bool, verbose: bool = False, stream: TextIO | None = None) -> ProgressView | None:
    """The display for this process: none when quiet (or --json), live on a terminal, else lines."""
    if quiet:
        return None
    out = stream or sys.stderr
    if out.isatty():
        from rich.console import Console

        return TerminalView(Console(file=out), verbose=verbose)
    return PlainView(out, verbose=verbose)


class _Rate:
    """Bytes per second and ETA of one transfer, from its first byte on (not rich's sampled speed,
    which has nothing to show until a second sample arrives)."""

    def __init__(self) -> None:
        self._started: float | None = None

    def start(self) -> None:
        """From now on (a push's upload may have begun before its check was complete: kept)."""
        if self._started is None:
            self._started = time.monotonic()

    def describe(self, done: int, total: int) -> str:
        started = self._started if self._started is not None else time.monotonic()
        elapsed = time.monotonic() - started
        rate = done / elapsed if elapsed > 0 else 0.0
        text = f"{human_bytes(done)} of {human_bytes(total)}, {human_bytes(rate)}/s"
        if 0 < done < total and rate > 0:
            text += f", ETA {human_duration((total - done) / rate)}"
        return text


def _discover_notes(event: DiscoverProgress, verbose: bool) -> list[str]:
    line = skipped_line(count_skipped(event.skipped))
    if line is None:
        return []
    return [f"roost: {line}", *(skipped_lines(event.skipped) if verbose else [])]


class PlainView:
    """One line per phase change, throttled to about one a second in between (CI logs)."""

    def __init__(
        self, stream: TextIO | None = None, *, interval_s: float = 1.0, verbose: bool = False
    ) -> None:
        self._stream = stream or sys.stderr
        self._interval_s = interval_s
        self._verbose = verbose
        self._last_line_at = 0.0
        self._rate = _Rate()
        self._transfer_lines = 0

    def _say(self, text: str, *, throttle: bool = False, prefix: str = "roost: ") -> None:
        now = time.monotonic()
        if throttle and now - self._last_line_at < self._interval_s:
            return
        self._last_line_at = now
        print(f"{prefix}{text}", file=self._stream, flush=True)

    def _transfer(self, verb: str, done: int, total: int, done_bytes: int, total_bytes: int) -> None:
        text = f"{verb} {done}/{total} chunks"
        if total_bytes > 0:
            text += f" ({self._rate.describe(done_bytes, total_bytes)})"
        # The first line of a transfer always shows, so its rate is on screen from the start.
        self._say(text, throttle=done != total and self._transfer_lines > 0)
        self._transfer_lines += 1

    def __call__(self, event: ProgressEvent) -> None:
        if isinstance(event, DiscoverProgress):
            self._say(f"found {plural(event.file_count, 'file')} ({human_bytes(event.total_bytes)})")
            for note in _discover_notes(event, self._verbose):
                self._say(note, prefix="")
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
            self._rate.start()
        elif isinstance(event, PushProgressUpload):
            self._rate.start()  # uploads overlap the scan: the first may precede check-missing
            self._transfer("uploaded", event.uploaded, event.total, event.bytes_uploaded, event.bytes_total)
        elif isinstance(event, PushProgressPublish):
            self._say(f"publishing again (attempt {event.attempt + 1})")
        elif isinstance(event, PullProgressDiscover):
            self._say(f"version has {plural(event.file_count, 'file')} ({human_bytes(event.total_bytes)})")
        elif isinstance(event, PullProgressPlan):
            self._say(
                f"{event.files_to_write} files to write: {event.chunks_to_download} chunks to download "
                f"({human_bytes(event.bytes_to_download)}), {event.chunks_to_copy} to copy locally"
            )
            self._rate.start()
        elif isinstance(event, PullProgressDownload):
            self._transfer(
                "downloaded", event.downloaded, event.total, event.bytes_downloaded, event.bytes_total
            )

    def close(self, ok: bool = True) -> None:
        return None


def _spinner_column() -> ProgressColumn:
    from rich.progress import SpinnerColumn
    from rich.text import Text

    class _Spinner(SpinnerColumn):
        """A spinner that stops once its task is finished or stopped (rich only stops on finished)."""

        def render(self, task: Task) -> RenderableType:
            if task.finished or task.stop_time is not None:
                return Text(" ")
            return super().render(task)

    return _Spinner()


class TerminalView:
    """A live rich display: hashing, checking, transferring (rate and ETA), publishing."""

    def __init__(self, console: Console, *, verbose: bool = False) -> None:
        from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn

        self._progress: Progress = Progress(
            _spinner_column(),
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            TaskProgressColumn(),
            TextColumn("{task.fields[detail]}"),
            console=console,
            transient=False,
        )
        self._verbose = verbose
        self._rate = _Rate()
        self._progress.start()
        self._hash_task: TaskID | None = None
        self._transfer_task: TaskID | None = None

    def _done_task(self, description: str, detail: str) -> None:
        task = self._progress.add_task(description, total=1, detail=detail)
        # add_task(completed=total) leaves the task unfinished in rich: update() finishes it.
        self._progress.update(task, completed=1)

    def _transfer(self, verb: str, done: int, total: int, done_bytes: int, total_bytes: int) -> None:
        if self._transfer_task is None:
            return
        detail = f"{done}/{total} chunks"
        if total_bytes > 0:
            self._progress.update(self._transfer_task, total=total_bytes, completed=done_bytes)
            detail += f", {self._rate.describe(done_bytes, total_bytes)}"
        else:
            self._progress.update(self._transfer_task, total=max(total, 1), completed=done)
        self._progress.update(self._transfer_task, detail=detail)

    def __call__(self, event: ProgressEvent) -> None:
        progress = self._progress
        if isinstance(event, DiscoverProgress):
            for note in _discover_notes(event, self._verbose):
                progress.console.print(note, markup=False, highlight=False)
            self._hash_task = progress.add_task(
                "hashing", total=max(event.total_bytes, 1), detail=f"{plural(event.file_count, 'file')}"
            )
        elif isinstance(event, HashProgress) and self._hash_task is not None:
            progress.update(
                self._hash_task,
                completed=event.bytes_done
                if event.bytes_total
                else int(event.files_done == event.files_total),
                detail=f"{event.files_done}/{event.files_total} files, "
                f"{human_bytes(event.bytes_done)} of {human_bytes(event.bytes_total)}",
            )
        elif isinstance(event, PushProgressCheckMissing):
            stored = event.total - event.missing
            self._done_task(
                "checking", f"{event.missing} of {event.total} chunks needed, {stored} already stored"
            )
            if event.missing and self._transfer_task is None:
                self._transfer_task = progress.add_task("uploading", total=event.missing, detail="")
            self._rate.start()
        elif isinstance(event, PushProgressUpload):
            # uploads overlap the scan: the first may precede check-missing (totals still growing)
            if self._transfer_task is None:
                self._transfer_task = progress.add_task("uploading", total=max(event.total, 1), detail="")
            self._rate.start()
            self._transfer("uploading", event.uploaded, event.total, event.bytes_uploaded, event.bytes_total)
        elif isinstance(event, PushProgressPublish):
            progress.add_task("publishing", total=1, completed=0, detail=f"attempt {event.attempt + 1}")
        elif isinstance(event, PullProgressDiscover):
            self._done_task(
                "reading", f"{plural(event.file_count, 'file')} ({human_bytes(event.total_bytes)})"
            )
        elif isinstance(event, PullProgressPlan):
            self._done_task(
                "planning",
                f"{event.files_to_write} files to write, {event.chunks_to_download} chunks to download, "
                f"{event.chunks_to_copy} to copy",
            )
            if event.chunks_to_download:
                self._transfer_task = progress.add_task(
                    "downloading", total=max(event.bytes_to_download, 1), detail=""
                )
            self._rate.start()
        elif isinstance(event, PullProgressDownload):
            self._transfer(
                "downloading", event.downloaded, event.total, event.bytes_downloaded, event.bytes_total
            )

    def close(self, ok: bool = True) -> None:
        progress = self._progress
        for task in progress.tasks:
            if task.finished:
                continue
            if ok and task.description == "publishing":
                progress.update(task.id, completed=task.total)
            else:
                progress.stop_task(task.id)
        progress.stop()
