"""Publishing the version manifest, with its 412 loop (``version_stale`` / missing chunks)."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from .._errors import RoostApiError
from .._wire import api_path, as_int, as_opt_str, as_str_list, expect_object, require_str
from ..client import JsonText, RoostClient, new_idempotency_key
from .tasks import Emitter
from .types import PushProgressPublish

__all__ = [
    "MAX_PUBLISH_ATTEMPTS",
    "Head",
    "Published",
    "parse_stale_head",
    "publish_version",
]

logger = logging.getLogger("roost")

#: Publish attempts driven by 412 answers (each may itself be retried on 429/5xx/transport errors).
MAX_PUBLISH_ATTEMPTS = 5
IDEMPOTENCY_PREFIX = "py-sdk-push-"

_STALE_HEAD = re.compile(r"current head \(([^()\s]+)\)")

RepairMissing = Callable[[list[str]], Awaitable[bool]]


@dataclass(frozen=True, slots=True)
class Head:
    """A roost head to publish on top of: a version id, or ``None`` for "no version yet"."""

    version_id: str | None


@dataclass(frozen=True, slots=True)
class Published:
    version_id: str
    version_number: int
    current_version_id: str
    previous_version_id: str | None
    attempts: int


def parse_stale_head(error: RoostApiError) -> Head | None:
    """The head named by a 412 ``version_stale`` detail, or ``None`` when it is not one.

    The detail reads ``expectedCurrentVersionId did not match the current head (<id>|null).
    re-read + retry.``; the match is anchored on ``current head (`` so other parentheses (such as
    ``chunk(s)`` in the missing-chunks detail) are never taken for a version id.
    """
    if error.status != 412 or error.code != "version_stale":
        return None
    detail = error.problem.get("detail")
    if not isinstance(detail, str):
        return None
    match = _STALE_HEAD.search(detail)
    if match is None:
        return None
    value = match.group(1)
    return Head(None if value == "null" else value)


def _body(
    site_id: str, version: Mapping[str, Any] | JsonText, head: Head | None, extras: Mapping[str, Any]
) -> dict[str, Any] | JsonText:
    rest: dict[str, Any] = {}
    if head is not None:
        rest["expectedCurrentVersionId"] = head.version_id
    rest.update(extras)
    if isinstance(version, JsonText):  # encoded once, spliced into each attempt's body
        start = json.dumps({"siteId": site_id}, separators=(",", ":"), ensure_ascii=False)[:-1]
        end = json.dumps(rest, separators=(",", ":"), ensure_ascii=False)[1:] if rest else "}"
        return JsonText(f'{start},"version":{version.text}{"," if rest else ""}{end}')
    return {"siteId": site_id, "version": version, **rest}


async def publish_version(
    http: RoostClient,
    roost_id: str,
    *,
    site_id: str,
    version: Mapping[str, Any] | JsonText,
    extras: Mapping[str, Any],
    head: Head | None,
    emit: Emitter,
    repair: RepairMissing,
) -> Published:
    """``POST /api/roosts/{roostId}/versions`` until it succeeds or a non-recoverable error.

    - Each distinct body has one Idempotency-Key, reused by every retry of that body (429, 5xx
      and transport errors are retried by the client's policy, safely).
    - 412 ``version_stale``: publish again on top of the head the server named (a new body, so
      a new key).
    - 412 ``precondition_failed`` with ``missingChunks``: ``repair`` uploads them (it returns
      ``False`` when it has nothing it can upload, and the 412 is raised), then the same body is
      published again (same key: the server never caches errors).
    - A ``publish`` event with the 0-based attempt index precedes every 412-driven re-publish.
    """
    path = api_path("api", "roosts", roost_id, "versions")
    keys: dict[Head | None, str] = {}
    attempt = 0
    while True:
        key = keys.setdefault(head, new_idempotency_key(IDEMPOTENCY_PREFIX))
        try:
            response = await http.request(
                path, method="POST", body=_body(site_id, version, head, extras), idempotency_key=key
            )
        except RoostApiError as error:
            if error.status != 412 or attempt + 1 >= MAX_PUBLISH_ATTEMPTS:
                raise
            stale = parse_stale_head(error)
            if stale is not None:
                logger.debug("push: head moved to %s, publishing on top of it", stale.version_id)
                head = stale
            elif error.code == "precondition_failed" and as_str_list(error.problem.get("missingChunks")):
                if not await repair(as_str_list(error.problem.get("missingChunks"))):
                    raise
            else:
                raise
            attempt += 1
            await emit(PushProgressPublish(attempt=attempt))
            continue
        where = f"POST {path}"
        data = expect_object(response.data, where)
        version_id = require_str(data, "versionId", where)
        current = data.get("currentVersionId")
        return Published(
            version_id=version_id,
            version_number=as_int(data.get("versionNumber")),
            current_version_id=current if isinstance(current, str) else version_id,
            previous_version_id=as_opt_str(data.get("previousVersionId")),
            attempts=attempt + 1,
        )
