"""The dedup check: which of the tree's unique chunk hashes the site does not store yet."""

from __future__ import annotations

from collections.abc import Sequence

import anyio

from .._wire import as_str_list, expect_object
from ..client import RoostClient
from .tasks import crew

__all__ = ["CHECK_BATCH_SIZE", "CHECK_PARALLELISM", "check_missing"]

CHECK_BATCH_SIZE = 900
CHECK_PARALLELISM = 4


async def check_missing(
    http: RoostClient,
    site_id: str,
    hashes: Sequence[str],
    *,
    batch_size: int = CHECK_BATCH_SIZE,
    parallelism: int = CHECK_PARALLELISM,
) -> list[str]:
    """``POST /api/chunks/check`` in batches of at most ``batch_size``, up to ``parallelism`` at once.

    The answer keeps batch order and drops duplicates and hashes that were not asked about.
    """
    batches = [list(hashes[i : i + batch_size]) for i in range(0, len(hashes), batch_size)]
    answers: list[list[str]] = [[] for _ in batches]
    limiter = anyio.Semaphore(max(1, parallelism))

    async def check_batch(index: int) -> None:
        async with limiter:
            response = await http.request(
                "/api/chunks/check", method="POST", body={"siteId": site_id, "hashes": batches[index]}
            )
        data = expect_object(response.data, "POST /api/chunks/check")
        answers[index] = as_str_list(data.get("missing"))

    async with crew() as tasks:
        for index in range(len(batches)):
            tasks.spawn(check_batch, index)

    asked = set(hashes)
    missing: dict[str, None] = {}
    for answer in answers:
        for chunk_hash in answer:
            if chunk_hash in asked:
                missing.setdefault(chunk_hash, None)
    return list(missing)
