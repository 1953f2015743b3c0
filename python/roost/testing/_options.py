"""The emulator's options: one dataclass that ``serve``, ``start_server``, the CLI and the pytest
marker all build, and that the running emulator reads (no second copy of the list anywhere)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from ._faults import Faults

__all__ = ["DEFAULT_MAX_JSON_BODY", "DEFAULT_STORAGE_SLACK", "EmulatorOptions"]

# The real API's largest bodies are 20,000-file manifests (a few MiB); 16 MiB leaves room while
# keeping a hostile body from taking the emulator's memory.
DEFAULT_MAX_JSON_BODY = 16 << 20
# Storage PUT bodies are chunks (at most 4 MiB) or installer binaries; this is added to the chunk
# size for chunk keys so a body one byte too long is still refused before it is buffered.
DEFAULT_STORAGE_SLACK = 64 << 10


@dataclass(frozen=True, slots=True)
class EmulatorOptions:
    """How to run the emulator. Keyword arguments of ``serve``/``start_server`` are these fields.

    ``data_dir=None`` keeps state in a temporary directory removed on stop; with a directory,
    state survives restarts (``site_id=None`` then reuses the stored site). ``faults`` may be a
    spec string (``"api_5xx=0.1,seed=7"``). TTLs are seconds.
    """

    host: str = "127.0.0.1"
    port: int = 0
    data_dir: str | Path | None = None
    token: str | None = None
    faults: Faults = field(default_factory=Faults)
    upload_url_ttl_s: float = 3600.0
    download_url_ttl_s: float = 900.0
    site_id: str | None = None
    strict_webhook_urls: bool = False
    webhook_retry_base_s: float = 5.0
    webhook_max_attempts: int = 10
    startup_timeout_s: float = 20.0
    max_json_body_bytes: int = DEFAULT_MAX_JSON_BODY
    max_blob_body_bytes: int = 512 << 20

    def __post_init__(self) -> None:
        if not isinstance(self.faults, Faults):
            object.__setattr__(self, "faults", Faults.coerce(self.faults))
        if not isinstance(self.port, int) or isinstance(self.port, bool) or not 0 <= self.port <= 65535:
            raise ValueError(f"emulator option port must be an integer 0-65535, got {self.port!r}")
        for name in ("upload_url_ttl_s", "download_url_ttl_s", "webhook_retry_base_s", "startup_timeout_s"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
                raise ValueError(f"emulator option {name} must be a number > 0, got {value!r}")
        for name in ("webhook_max_attempts", "max_json_body_bytes", "max_blob_body_bytes"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"emulator option {name} must be an integer >= 1, got {value!r}")
        if self.token is not None and not self.token.startswith(("owk_test_", "owk_live_")):
            # the value itself is a credential: never echo it
            raise ValueError("emulator option token must start with owk_test_ or owk_live_")

    @classmethod
    def build(cls, options: EmulatorOptions | None = None, **overrides: Any) -> EmulatorOptions:
        """``options`` (or the defaults) with ``overrides`` applied; an unknown name is an error."""
        unknown = sorted(set(overrides) - {f.name for f in fields(cls)})
        if unknown:
            known = ", ".join(f.name for f in fields(cls))
            raise TypeError(f"unknown emulator option(s) {', '.join(unknown)}; known: {known}")
        base = options if options is not None else cls()
        return dataclasses.replace(base, **overrides) if overrides else base
