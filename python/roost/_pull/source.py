"""Where a pull's manifest comes from: the manifest cache when this machine holds the version, else the API.

``ref`` is first turned into a version id with the cheapest call that can tell (versions are
immutable, so only that step can go stale):

- a bare version id (64 hex): no call. The id is the SHA-256 of the version's body and a cached
  entry was checked to hash to it, so nothing the server says could change what it names. A
  version deleted on the server since, or a token that lost access, goes unnoticed while nothing
  has to be downloaded; any download mints URLs through the API, which checks both;
- ``current`` / ``previous``: the roost read (``GET /api/roosts/{id}``: one small document, the
  same pointers the server's resolver follows);
- a number (``3``, ``v3``, ``#3``), ``first``, a legacy ``vrs_`` id: the version's files route
  with one row per page, whose answer carries the resolved ``versionId``.

On a miss the manifest is read by that id (never by ``ref`` again: a publish in between cannot
swap the version resolved), and stored once its paths passed the checks (see :mod:`.cache`).

For a pointer, the version it named at the last pull is a hint: its cached manifest is loaded
(and the destination inspected against it) while the roost read is in flight, and used only
when the read names that same version.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import anyio.to_thread

from .._wire import MalformedResponseError, api_path
from ..client import RoostClient
from ..resources._common import require_id, version_ref_segment
from . import cache
from .manifest import VersionManifest, fetch_manifest

__all__ = [
    "LoadedManifest",
    "guess_manifest",
    "is_pointer",
    "load_manifest",
    "remember",
    "resolve_version_id",
]

_VERSION_ID = re.compile(r"[0-9a-f]{64}\Z")
_POINTERS = {"current": "currentVersionId", "previous": "previousVersionId"}


@dataclass(frozen=True, slots=True)
class LoadedManifest:
    """A manifest and where it came from: ``cached`` ones passed every check when stored;
    ``key`` is the cache entry to store a fresh one under (None when caching is off)."""

    manifest: VersionManifest
    cached: bool
    key: str | None = None


def _version_id(data: object, field: str) -> str | None:
    value = data.get(field) if isinstance(data, dict) else None
    return value if isinstance(value, str) and _VERSION_ID.match(value) else None


async def resolve_version_id(http: RoostClient, roost_id: str, site_id: str, ref: str | int) -> str | None:
    """The version id ``ref`` names; None when the cheap answer has none (e.g. a roost without a
    current version: the manifest GET by ``ref`` then raises the server's own error)."""
    text = version_ref_segment(ref, "PullOptions.ref")
    if _VERSION_ID.match(text):
        return text
    roost = require_id(roost_id, "roost_id")
    query: dict[str, object] = {"siteId": require_id(site_id, "site_id")}
    pointer = _POINTERS.get(text)
    if pointer is not None:
        response = await http.request(api_path("api", "roosts", roost), query=query)
        return _version_id(response.data, pointer)
    path = api_path("api", "roosts", roost, "versions", text, "files")
    response = await http.request(path, query={**query, "page_size": 1})
    return _version_id(response.data, "versionId")


def _pointer(ref: str | int) -> str | None:
    text = version_ref_segment(ref, "PullOptions.ref")
    return text if text in _POINTERS else None


def is_pointer(ref: str | int) -> bool:
    """Whether ``ref`` names a roost pointer (``current``, ``previous``), which moves on publish."""
    return _pointer(ref) is not None


def _hint_key(api_url: str, site_id: str, roost_id: str, pointer: str) -> str:
    # "@" cannot start a version id: the hint of a pointer never shares a name with a manifest.
    return cache.cache_key(api_url, site_id, roost_id, "@" + pointer)


def _guess(
    api_url: str, site_id: str, roost_id: str, pointer: str
) -> tuple[str | None, VersionManifest | None]:
    hinted = cache.load_hint(_hint_key(api_url, site_id, roost_id, pointer))
    if hinted is None:
        return None, None
    return hinted, cache.load(cache.cache_key(api_url, site_id, roost_id, hinted))


async def guess_manifest(
    http: RoostClient, roost_id: str, site_id: str, ref: str | int
) -> tuple[str | None, VersionManifest | None]:
    """For ``current``/``previous``: the version id the pointer named at this machine's last pull
    (a hint, never trusted) and that version's cached manifest, so that the manifest can be
    loaded and the destination inspected while the roost read is in flight; the engine uses them
    only when the read names the same version. ``(None, None)`` for other refs or no hint."""
    pointer = _pointer(ref)
    if pointer is None:
        return None, None
    return await anyio.to_thread.run_sync(_guess, http.api_url, site_id, roost_id, pointer)


def remember(http: RoostClient, roost_id: str, site_id: str, ref: str | int, version_id: str) -> None:
    """Blocking: the hint for :func:`guess_manifest` (only for a pointer ref; best effort)."""
    pointer = _pointer(ref)
    if pointer is not None:
        cache.store_hint(_hint_key(http.api_url, site_id, roost_id, pointer), version_id)


async def load_manifest(
    http: RoostClient, roost_id: str, site_id: str, ref: str | int, version_id: str | None, *, use_cache: bool
) -> LoadedManifest:
    """The manifest of ``ref``, resolved to ``version_id`` (:func:`resolve_version_id`; None: not
    resolved, or caching off): from the cache on a hit, else fetched (not yet stored: the caller
    stores it with :func:`cache.store` once its paths passed the checks)."""
    if not use_cache or version_id is None:
        return LoadedManifest(await fetch_manifest(http, roost_id, site_id, ref), cached=False)
    key = cache.cache_key(http.api_url, site_id, roost_id, version_id)
    hit = await anyio.to_thread.run_sync(cache.load, key)
    if hit is not None:
        return LoadedManifest(hit, cached=True)
    manifest = await fetch_manifest(http, roost_id, site_id, version_id)
    if manifest.version_id != version_id:
        raise MalformedResponseError(
            f"GET /api/roosts/{roost_id}/versions/{version_id}",
            f"answered version {manifest.version_id!r} for {version_id!r}",
        )
    return LoadedManifest(manifest, cached=False, key=key)
