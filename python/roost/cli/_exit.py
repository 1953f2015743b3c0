"""Exit codes of the ``roost`` command, stable for CI scripts."""

from __future__ import annotations

OK = 0
USAGE = 2
API_ERROR = 3
LOCAL_INPUT = 4
INTERRUPTED = 130


class UsageError(Exception):
    """A missing or invalid option the parser could not catch (exit 2)."""


class LocalInputError(Exception):
    """A local path or file the command cannot use (exit 4)."""
