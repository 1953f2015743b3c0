"""Text output shared by the commands, the progress views and the demo."""

from __future__ import annotations

import sys
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from roost.chunker import SkippedEntry
from roost.resources.roosts import PushResult

__all__ = [
    "SHORT_ID_LENGTH",
    "count_skipped",
    "human_bytes",
    "human_duration",
    "plural",
    "print_diff",
    "print_table",
    "push_summary",
    "short_id",
    "skipped_line",
    "skipped_lines",
    "warn",
]

#: Version ids are 64 hex digits; 12 are unique in practice and fit a terminal line (as git's).
SHORT_ID_LENGTH = 12

# (singular, plural) for each SkipReason, so that the line reads as a sentence.
_SKIP_WORDS: dict[str, tuple[str, str]] = {
    "link_outside_root": ("link outside the folder", "links outside the folder"),
    "broken_link": ("broken link", "broken links"),
    "special_file": ("special file", "special files"),
    "repeated_directory": ("repeated directory", "repeated directories"),
}


def human_bytes(count: float) -> str:
    value = float(count)
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if abs(value) < 1000 or unit == "TB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    raise AssertionError("unreachable")


def human_duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, rest = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{rest:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


def plural(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


def short_id(identifier: str | None) -> str:
    return (identifier or "-")[:SHORT_ID_LENGTH]


def warn(text: str) -> None:
    print(f"warning: {text}", file=sys.stderr, flush=True)


def print_table(rows: Sequence[Sequence[str]], headers: Sequence[str]) -> None:
    widths = [max(len(str(cell)) for cell in column) for column in zip(headers, *rows, strict=False)]
    for row in [headers, *rows]:
        print("  ".join(str(cell).ljust(width) for cell, width in zip(row, widths, strict=False)).rstrip())


def print_diff(diff: Mapping[str, Any]) -> None:
    summary = diff.get("summary") or {}
    print(
        f"{summary.get('added', 0)} added, {summary.get('removed', 0)} removed, "
        f"{summary.get('changed', 0)} changed, {summary.get('unchanged', 0)} unchanged "
        f"({int(summary.get('netBytesDelta') or 0):+d} bytes)"
    )
    for entry in diff.get("added") or []:
        print(f"  + {entry['path']}")
    for entry in diff.get("removed") or []:
        print(f"  - {entry['path']}")
    for entry in diff.get("modified") or []:
        print(f"  ~ {entry['path']} ({entry.get('fromSize')} -> {entry.get('toSize')} bytes)")


def push_summary(result: PushResult, elapsed_s: float) -> str:
    """``published v3 1f2e3d4c5b6a: 32 files (5.3 MB, 1 empty), 1 of 32 chunks uploaded (4.2 MB) in 1.2s``."""
    stats = result.stats
    files = f"{plural(stats.file_count, 'file')} ({human_bytes(stats.total_bytes)}"
    files += f", {stats.empty_files} empty)" if stats.empty_files else ")"
    transfer = (
        f"{stats.uploaded_chunks} of {stats.unique_chunks} chunks uploaded "
        f"({human_bytes(stats.uploaded_bytes)}) in {human_duration(elapsed_s)}"
    )
    head = f"v{result.version_number} {short_id(result.version_id)}"
    if result.unchanged:
        return f"unchanged: {head} already holds these {files}; nothing was published"
    return f"published {head}: {files}, {transfer}"


def skipped_line(counts: Mapping[str, int]) -> str | None:
    """``skipped 3: 2 links outside the folder, 1 special file`` (None when nothing was skipped)."""
    total = sum(counts.values())
    if total == 0:
        return None
    parts = []
    for reason, count in sorted(counts.items(), key=lambda item: (-item[1], item[0])):
        if count:
            singular, plural = _SKIP_WORDS.get(reason, (reason, reason))
            parts.append(f"{count} {singular if count == 1 else plural}")
    return f"skipped {total}: {', '.join(parts)}"


def skipped_lines(entries: Iterable[SkippedEntry]) -> list[str]:
    """One ``  path (reason)`` line per skipped entry, for ``--verbose``."""
    return [f"  {entry.path} ({_SKIP_WORDS.get(entry.reason, (entry.reason,))[0]})" for entry in entries]


def count_skipped(entries: Iterable[SkippedEntry]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for entry in entries:
        counts[entry.reason] = counts.get(entry.reason, 0) + 1
    return counts
