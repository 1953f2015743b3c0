"""``python pull_script.py URL TOKEN SITE ROOST DEST``: one pull, for the interruption test.

Prints one line per download event; exits 130 on SIGINT, like the command line.
"""

from __future__ import annotations

import sys

import anyio

from roost import PullOptions, Roost
from roost.resources.roosts import PullProgressEvent


def progress(event: PullProgressEvent) -> None:
    if event.phase == "download":
        print(f"download {event.downloaded}/{event.total} {event.bytes_downloaded}", flush=True)


async def main() -> None:
    url, token, site_id, roost_id, dest = sys.argv[1:6]
    async with Roost(token=token, api_url=url) as client:
        options = PullOptions(site_id=site_id, concurrency=1, on_progress=progress)
        result = await client.roosts.pull(roost_id, dest, options)
    print(f"done {result.stats.downloaded_chunks}", flush=True)


if __name__ == "__main__":
    try:
        anyio.run(main)
    except KeyboardInterrupt:
        sys.exit(130)
