"""Validators and presenters that several nouns share (one home for each rule)."""

from __future__ import annotations

import os
import re
from typing import Any

from .._emulator import Emulator
from .._jsonutil import dumps, iso

__all__ = [
    "UID_RE",
    "dedupe",
    "is_deleted",
    "js_string",
    "machine_parent",
    "string_list",
    "used_bytes",
    "version_summary",
]


def string_list(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) and v for v in value)


def dedupe(values: list[str], limit: int) -> list[str]:
    seen: dict[str, None] = {}
    for value in values:
        seen.setdefault(value, None)
    return list(seen)[:limit]


def js_string(value: Any) -> str:
    if isinstance(value, str):
        return value
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, dict):
        return "[object Object]"
    if isinstance(value, list):
        return ",".join(js_string(v) for v in value)
    return dumps(value)


def version_summary(doc: dict[str, Any] | None) -> dict[str, Any] | None:
    if doc is None:
        return None
    return {
        "versionId": doc.get("versionId"),
        "versionNumber": doc.get("versionNumber"),
        "description": doc.get("description"),
        "versionUrl": doc.get("versionUrl"),
        "createdAt": iso(doc.get("createdAt")),
        "createdBy": doc.get("createdBy"),
        "totalSize": doc.get("totalSize", 0),
        "totalFiles": doc.get("totalFiles", 0),
        "parentVersionId": doc.get("parentVersionId"),
    }


def is_deleted(doc: dict[str, Any]) -> bool:
    return doc.get("deletedAt") is not None


def used_bytes(emu: Emulator, site_id: str) -> int:
    root = emu.chunks.root / site_id
    total = 0
    if not root.is_dir():
        return 0
    for prefix in os.scandir(root):
        if not prefix.is_dir():
            continue
        for entry in os.scandir(prefix.path):
            if entry.is_file() and not entry.name.endswith(".part"):
                total += entry.stat().st_size
    return total


UID_RE = re.compile(r"^[A-Za-z0-9_-]{1,128}$")


def machine_parent(site_id: str, machine_id: str) -> str:
    return f"{site_id}/{machine_id}"
