"""Fault injection knobs for the emulator: one ``knob=value,knob=value`` syntax for the CLI and Python."""

from __future__ import annotations

import asyncio
import random
import threading
import time
from dataclasses import dataclass, fields, replace

__all__ = ["FAULT_KNOBS", "Dice", "FaultSpecError", "Faults", "Throttle"]


class FaultSpecError(ValueError):
    """A ``--faults`` / ``serve(faults=...)`` spec that cannot be parsed."""


_FRACTIONS = ("api_5xx", "api_429", "storage_5xx", "storage_drop")
_INTEGERS = ("seed",)
_NON_NEGATIVE = ("api_latency_ms", "storage_latency_ms", "storage_bandwidth_mbps")
_POSITIVE_TTLS = ("upload_url_ttl_s", "download_url_ttl_s")


@dataclass(frozen=True, slots=True)
class Faults:
    """What to break, and how often. All fractions are in ``[0, 1]``; everything defaults to "off".

    - ``api_5xx``: fraction of API calls answering 500 or 503 (before the handler runs).
    - ``api_429``: fraction of API calls answering 429 ``rate_limited`` with ``retryAfter``.
    - ``storage_5xx``: fraction of storage PUTs answering 500/503 (the bytes are not stored).
    - ``storage_drop``: fraction of storage PUTs whose connection is dropped mid-body.
    - ``api_latency_ms`` / ``storage_latency_ms``: added delay per API call / storage request.
    - ``storage_bandwidth_mbps``: a cap in MB/s (10**6 bytes) shared by all storage transfers.
    - ``upload_url_ttl_s`` / ``download_url_ttl_s``: override the presigned URL lifetimes.
    - ``seed``: seeds the fault dice, so a failing run can be replayed.
    """

    api_5xx: float = 0.0
    api_429: float = 0.0
    storage_5xx: float = 0.0
    storage_drop: float = 0.0
    api_latency_ms: float = 0.0
    storage_latency_ms: float = 0.0
    storage_bandwidth_mbps: float = 0.0
    upload_url_ttl_s: float | None = None
    download_url_ttl_s: float | None = None
    seed: int | None = None
    retry_after_s: int = 1

    def __post_init__(self) -> None:
        for name in _FRACTIONS:
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise FaultSpecError(f"fault knob {name} must be a fraction in [0, 1], got {value}")
        for name in _NON_NEGATIVE:
            if getattr(self, name) < 0:
                raise FaultSpecError(f"fault knob {name} must be >= 0, got {getattr(self, name)}")
        for name in _POSITIVE_TTLS:
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise FaultSpecError(f"fault knob {name} must be > 0, got {value}")
        if self.retry_after_s < 1:
            raise FaultSpecError("retry_after_s must be >= 1")

    @classmethod
    def parse(cls, spec: str | None) -> Faults:
        """Parse ``"api_5xx=0.1,api_429=0.05,seed=7"``. An unknown knob lists the known ones."""
        if spec is None or not spec.strip():
            return cls()
        values: dict[str, float | int | None] = {}
        for raw in spec.split(","):
            part = raw.strip()
            if not part:
                continue
            name, sep, text = part.partition("=")
            name = name.strip()
            text = text.strip()
            if name not in FAULT_KNOBS:
                raise FaultSpecError(f"unknown fault knob {name!r}; known knobs: {', '.join(FAULT_KNOBS)}")
            if not sep or not text:
                raise FaultSpecError(f"fault knob {name} needs a value ({name}=<value>)")
            try:
                if name in _INTEGERS:
                    values[name] = int(text)
                else:
                    number = float(text)
                    if number != number or number in (float("inf"), float("-inf")):
                        raise ValueError(text)
                    values[name] = number
            except ValueError:
                raise FaultSpecError(f"fault knob {name} has a non-numeric value {text!r}") from None
        return cls(**values)  # type: ignore[arg-type]

    @classmethod
    def coerce(cls, value: Faults | str | None) -> Faults:
        if isinstance(value, Faults):
            return value
        return cls.parse(value)

    def with_overrides(self, **changes: float | int | None) -> Faults:
        return replace(self, **changes)  # type: ignore[arg-type]

    def spec(self) -> str:
        """The spec string that reproduces these faults (only the knobs that are set)."""
        default = Faults()
        parts = []
        for name in FAULT_KNOBS:
            value = getattr(self, name)
            if value != getattr(default, name):
                parts.append(f"{name}={value}")
        return ",".join(parts)


FAULT_KNOBS: tuple[str, ...] = tuple(f.name for f in fields(Faults) if f.name != "retry_after_s")


class Dice:
    """Seeded coin flips, safe to share between threads."""

    def __init__(self, seed: int | None, salt: int) -> None:
        self._rng = random.Random(None if seed is None else seed * 1_000_003 + salt)
        self._lock = threading.Lock()

    def roll(self, fraction: float) -> bool:
        if fraction <= 0:
            return False
        with self._lock:
            return self._rng.random() < fraction

    def choice(self, options: tuple[int, ...]) -> int:
        with self._lock:
            return options[self._rng.randrange(len(options))]


class Throttle:
    """A server-wide bandwidth cap: each transfer reserves its bytes on one shared timeline."""

    def __init__(self, mbps: float) -> None:
        self.rate = mbps * 1_000_000.0
        self._next_free = 0.0
        self._lock = threading.Lock()

    def reserve(self, nbytes: int) -> float:
        """Book ``nbytes`` on the shared timeline; returns the seconds to wait before going on."""
        if self.rate <= 0 or nbytes <= 0:
            return 0.0
        with self._lock:
            now = time.monotonic()
            start = max(now, self._next_free)
            self._next_free = start + nbytes / self.rate
            return self._next_free - now

    async def consume(self, nbytes: int) -> None:
        wait = self.reserve(nbytes)
        if wait > 0:
            await asyncio.sleep(wait)
