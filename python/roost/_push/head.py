"""The roost read a push starts with: it proves the token and the site and tells the head.

``GET /api/roosts/{roostId}`` runs while the tree is scanned. A bad token (401), an unknown site
(404 ``site not found or no access``) or any other error fails the push at once and cancels the
scan. The answer gives the head to publish on top of (``expectedCurrentVersionId``), whether the
roost exists yet (the server creates unknown roosts on publish: ``PushResult.created_roost``) and
the fields ``skip_unchanged`` compares.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

from .._errors import NotFoundError, PermissionDeniedError
from .._wire import api_path, as_dict, as_int, as_list, as_opt_str, as_str_list, expect_object
from ..chunker import ChunkDescriptor, ChunkedFileEntry
from ..chunker._model import entries_json
from ..client import RoostClient
from .ledger import files_digest
from .publish import Head
from .types import PushOptions

__all__ = ["SITE_NOT_FOUND", "RoostHead", "fetch_version_files", "read_head", "same_fields"]

logger = logging.getLogger("roost")

#: The detail of the auth layer's 404 (anti-enumeration: also "no access"), unlike a missing roost.
SITE_NOT_FOUND = "site not found or no access"


@dataclass(frozen=True, slots=True)
class RoostHead:
    """What the read found. ``guard`` is ``None`` when the key may not read the roost (403)."""

    guard: Head | None
    exists: bool = False
    version_number: int = 0
    previous_version_id: str | None = None
    name: str | None = None
    targets: tuple[str, ...] = ()
    extract_path: str | None = None
    description: str | None = None


async def read_head(http: RoostClient, roost_id: str, site_id: str) -> RoostHead:
    """The roost's current state; a roost that does not exist yet has head ``null``.

    When the key may not read the roost (403) the publish goes out unguarded. Any other error is
    raised (the publish would fail the same way).
    """
    path = api_path("api", "roosts", roost_id)
    try:
        response = await http.request(path, query={"siteId": site_id})
    except NotFoundError as error:
        if error.problem.get("detail") == SITE_NOT_FOUND:
            raise
        return RoostHead(Head(None))
    except PermissionDeniedError as error:
        logger.debug("push: cannot read the head of %s (%r); publishing unguarded", roost_id, error)
        return RoostHead(None)
    data = expect_object(response.data, f"GET {path}")
    current = as_dict(data.get("currentVersion")) or {}
    return RoostHead(
        guard=Head(as_opt_str(data.get("currentVersionId"))),
        exists=True,
        version_number=as_int(current.get("versionNumber")),
        previous_version_id=as_opt_str(data.get("previousVersionId")),
        name=as_opt_str(data.get("name")),
        targets=tuple(as_str_list(data.get("targets"))),
        extract_path=as_opt_str(data.get("extractPath")),
        description=as_opt_str(current.get("description")),
    )


def _stored_targets(targets: Sequence[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(targets))[:500]


def same_fields(opts: PushOptions, head: RoostHead) -> bool:
    """Whether publishing ``opts``' fields would leave them as the head has them.

    Compared as the server stores them (trimmed, truncated, deduplicated; a blank description is
    no description). A field that is not given is not compared: the publish would keep it, and a
    description that is not given is not a change of the tree.
    """
    if opts.name is not None and opts.name.strip()[:200] != head.name:
        return False
    if opts.targets is not None and _stored_targets(opts.targets) != head.targets:
        return False
    extract_path = (opts.extract_path or "").strip()[:500]
    if extract_path and extract_path != head.extract_path:
        return False
    return opts.description is None or (opts.description.strip() or None) == head.description


async def fetch_version_files(
    http: RoostClient, roost_id: str, site_id: str, version_id: str
) -> tuple[str, frozenset[str]]:
    """The :func:`files_digest` of a published version and its chunk hashes (one request)."""
    path = api_path("api", "roosts", roost_id, "versions", version_id)
    response = await http.request(path, query={"siteId": site_id})
    version = as_dict(expect_object(response.data, f"GET {path}").get("version")) or {}
    files = [f for f in as_list(version.get("files")) if isinstance(f, dict)]
    files.sort(key=lambda f: str(f.get("path")))
    listed = [
        ChunkedFileEntry(
            str(f.get("path")),
            as_int(f.get("size")),
            tuple(
                ChunkDescriptor(str(c.get("hash")), as_int(c.get("size")))
                for c in as_list(f.get("chunks"))
                if isinstance(c, dict)
            ),
        )
        for f in files
    ]
    chunks = frozenset(chunk.hash for entry in listed for chunk in entry.chunks)
    return files_digest(entries_json(listed)), chunks
