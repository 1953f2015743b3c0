"""Hello world: publish ./dist as a new version of a roost (the spec's < 10 line example).

    OWLETTE_TOKEN=owk_test_... python examples/hello_world.py [DIST_DIR] [ROOST_ID]

``OWLETTE_API_URL`` and ``OWLETTE_SITE`` are honoured too. Roost ids are 8-64 characters of
``[A-Za-z0-9_-]``; the default is ``rst_hello_world``.
"""

from __future__ import annotations

import asyncio
import os
import sys

from roost import DEFAULT_API_URL, PushOptions, Roost


async def main(dist: str = "./dist", roost_id: str = "rst_hello_world") -> None:
    async with Roost(
        token=os.environ["OWLETTE_TOKEN"], api_url=os.environ.get("OWLETTE_API_URL", DEFAULT_API_URL)
    ) as client:
        identity = await client.account.whoami()
        site_id = os.environ.get("OWLETTE_SITE") or identity.primary_site_id or "kiosk-fleet-01"
        result = await client.roosts.push(
            dist,
            roost_id,
            PushOptions(site_id=site_id, description="initial publish"),
        )
        print(
            f"published v{result.version_number}",
            result.version_id,
            "—",
            result.stats.uploaded_chunks,
            "chunks uploaded",
        )


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:3]))
