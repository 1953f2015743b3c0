"""Version-ref resolution (``current``, ``previous``, ``first``, ``#3``, ``v3``, 64-hex, ``vrs_``)."""

from __future__ import annotations

import re
from typing import Any

from ._problems import ApiError, problem
from ._store import Store

__all__ = ["resolve_version", "roost_parent"]

_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_VRS_HEX = re.compile(r"^vrs_([0-9a-f]{64})$")


def roost_parent(site_id: str, roost_id: str) -> str:
    return f"{site_id}/{roost_id}"


def _not_found(detail: str, instance: str) -> ApiError:
    return problem(404, "not-found", "version not found", detail, code="version_not_found", instance=instance)


def malformed(detail: str, instance: str, title: str = "versionRef malformed") -> ApiError:
    return problem(400, "validation-failed", title, detail, code="version_ref_malformed", instance=instance)


def _by_number(store: Store, parent: str, number: int) -> dict[str, Any] | None:
    for _, doc in store.docs("version", parent):
        if doc.get("versionNumber") == number:
            return doc
    return None


def resolve_version(
    store: Store,
    site_id: str,
    roost_id: str,
    raw_ref: str,
    *,
    instance: str,
    title: str = "versionRef malformed",
) -> dict[str, Any]:
    """The version document a ref names, or the server's 400/404 problem."""
    ref = raw_ref.strip()
    parent = roost_parent(site_id, roost_id)
    if not ref:
        raise malformed("versionRef must not be empty", instance, title)
    if ref in ("current", "previous", "first"):
        roost = store.get("roost", site_id, roost_id)
        if roost is None:
            raise _not_found(f"roost {roost_id} not found on site {site_id}", instance)
        if ref == "first":
            doc = _by_number(store, parent, 1)
            if doc is None:
                raise _not_found(f"no version with versionNumber=1 on roost {roost_id}", instance)
            return doc
        pointer = roost.get("currentVersionId" if ref == "current" else "previousVersionId")
        if not pointer:
            if ref == "current":
                raise _not_found(f"roost {roost_id} has no current version (no publishes yet)", instance)
            raise _not_found(f"roost {roost_id} has no previous version", instance)
        doc = store.get("version", parent, str(pointer))
        if doc is None:
            raise _not_found(f"version {pointer} not found on roost {roost_id}", instance)
        return doc
    if _HEX64.match(ref):
        doc = store.get("version", parent, ref)
        if doc is None:
            raise _not_found(f"version {ref} not found on roost {roost_id}", instance)
        return doc
    if ref.startswith("vrs_"):
        match = _VRS_HEX.match(ref)
        doc = store.get("version", parent, match.group(1)) if match else None
        if doc is None:
            doc = store.get("version", parent, ref)
        if doc is None:
            raise _not_found(f"version {ref} not found on roost {roost_id}", instance)
        return doc
    rest = ref[1:] if ref[0] in "#vV" else ref
    # the length bound comes before int(): a 4,300-digit ref would raise instead of answering 400
    if rest.isascii() and rest.isdigit() and len(rest) <= 15 and str(int(rest)) == rest and int(rest) > 0:
        number = int(rest)
        doc = _by_number(store, parent, number)
        if doc is None:
            raise _not_found(f"no version with versionNumber={number} on roost {roost_id}", instance)
        return doc
    raise malformed(
        f"versionRef '{ref}' is malformed — accepts: a positive integer ('3'), '#3' / 'v3', a 64-char "
        "sha-256 version id, legacy 'vrs_*' id, or alias 'current'/'previous'/'first'.",
        instance,
        title,
    )
