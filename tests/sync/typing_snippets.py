"""Checked by mypy only (never run): the blocking client's types as users' editors see them.

A wrong attribute or argument must be a type error, so each ``type: ignore`` below is needed
(mypy's ``warn_unused_ignores`` fails the run if one is not).
"""

from __future__ import annotations

from collections.abc import Iterator

import roost.sync
from roost import PushOptions, PushResult, RoostSummary, WhoamiResponse
from roost.resources.roosts import PushProgressEvent


def blocking_types(client: roost.sync.Roost) -> None:
    who: WhoamiResponse = client.account.whoami()
    rows: Iterator[RoostSummary] = client.roosts.list(site_id="site-1")
    page: tuple[list[RoostSummary], str] = client.roosts.list_page(site_id="site-1")
    result: PushResult = client.roosts.push("build", "rst_abcdefgh", PushOptions(site_id="site-1"))
    handle: roost.sync.PushHandle = client.roosts.start_push(
        "build", "rst_abcdefgh", PushOptions(site_id="s")
    )
    latest: PushProgressEvent | None = handle.latest
    final: PushResult = handle.result(timeout=1.0)
    deltas: Iterator[str] = client.chat.send("conv", "hi")
    client.roosts.lst(site_id="site-1")  # type: ignore[attr-defined]
    client.roosts.get(3, site_id="site-1")  # type: ignore[arg-type]
    del who, rows, page, result, latest, final, deltas
