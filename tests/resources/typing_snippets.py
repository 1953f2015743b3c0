"""Not a test module: the spec's ``typing`` imports, type-checked by ``mypy --strict tests/resources``."""

from __future__ import annotations

from roost import (
    ApiKeyScope,
    PushOptions,
    PushResult,
    RoostDetail,
    RoostSummary,
    VersionSummary,
    WebhookSubscription,
)
from roost.resources.roosts import PushProgressEvent


async def handle(evt: PushProgressEvent) -> None:
    if evt.phase == "discover":
        print(f"found {evt.file_count} files ({evt.total_bytes} bytes)")
    elif evt.phase == "hash":
        print(f"hashing {evt.file} ({evt.files_done}/{evt.files_total})")
    elif evt.phase == "check-missing":
        print(f"{evt.missing} of {evt.total} chunks need upload")
    elif evt.phase == "upload":
        print(f"{evt.uploaded}/{evt.total} chunks uploaded")
    elif evt.phase == "publish":
        print(f"publishing version (attempt {evt.attempt})")


def describe(
    summary: RoostSummary,
    detail: RoostDetail,
    scope: ApiKeyScope,
    hook: WebhookSubscription,
    result: PushResult,
) -> str:
    current: VersionSummary | None = detail.current_version
    options = PushOptions(site_id=summary.site_id, on_progress=handle)
    return " ".join(
        [
            summary.roost_id,
            current.version_id if current else "-",
            scope.resource,
            ",".join(hook.events),
            str(result.stats.uploaded_chunks),
            options.site_id,
        ]
    )
