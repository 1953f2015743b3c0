"""Where the command line finds its settings: flags first, then the environment."""

from __future__ import annotations

import argparse
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from roost import DEFAULT_API_URL, Roost

from ._exit import UsageError

TOKEN_ENV = "OWLETTE_TOKEN"
API_URL_ENV = "OWLETTE_API_URL"
SITE_ENV = "OWLETTE_SITE"


@dataclass(frozen=True, slots=True)
class Settings:
    token: str
    api_url: str
    site_id: str | None

    def __repr__(self) -> str:  # the token never reaches a log or a traceback
        return f"Settings(token=<redacted>, api_url={self.api_url!r}, site_id={self.site_id!r})"

    def require_site(self) -> str:
        if not self.site_id:
            raise UsageError(f"no site: pass --site SITE or set {SITE_ENV}")
        return self.site_id


def resolve(args: argparse.Namespace) -> Settings:
    token = getattr(args, "token", None) or os.environ.get(TOKEN_ENV, "")
    if not token:
        raise UsageError(f"no API token: pass --token or set {TOKEN_ENV}")
    api_url = getattr(args, "api_url", None) or os.environ.get(API_URL_ENV) or DEFAULT_API_URL
    site_id = getattr(args, "site", None) or os.environ.get(SITE_ENV) or None
    return Settings(token=token, api_url=api_url, site_id=site_id)


@asynccontextmanager
async def open_client(args: argparse.Namespace) -> AsyncIterator[tuple[Roost, Settings]]:
    """The SDK client for these settings, closed when the command is done."""
    settings = resolve(args)
    async with Roost(token=settings.token, api_url=settings.api_url) as client:
        yield client, settings
