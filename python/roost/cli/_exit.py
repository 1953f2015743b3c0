"""Exit codes of the ``roost`` command, stable for CI scripts, and the errors that choose them."""

from __future__ import annotations

import argparse

OK = 0
#: ``webhook verify``: the signature is invalid; ``pull --check``: the directory differs.
DIFFERENT = 1
USAGE = 2
API_ERROR = 3
LOCAL_INPUT = 4
INTERRUPTED = 130


class UsageError(Exception):
    """A missing or invalid option (exit 2); ``parser`` is the (sub)command whose usage to show."""

    def __init__(self, message: str, parser: argparse.ArgumentParser | None = None) -> None:
        super().__init__(message)
        self.parser = parser


class LocalInputError(Exception):
    """A local path, file or name the command cannot use (exit 4); ``code`` names it under --json."""

    def __init__(self, message: str, code: str = "local_input") -> None:
        super().__init__(message)
        self.code = code
