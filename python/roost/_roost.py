"""``Roost``: the client facade that hangs every resource off one connection pool."""

from __future__ import annotations

import os
from functools import cached_property
from types import TracebackType

import httpx

from .client import DEFAULT_API_URL, DEFAULT_ROOST_VERSION, Environment, RetryPolicy, RoostClient, Sleep
from .resources.account import Account
from .resources.chat import Chat
from .resources.chunks import Chunks
from .resources.deployments import Deployments
from .resources.installer import Installer
from .resources.installer_deployments import InstallerDeployments
from .resources.keys import Keys
from .resources.machines import Machines
from .resources.members import Members
from .resources.processes import Processes
from .resources.quotas import Quotas
from .resources.roosts import Roosts
from .resources.sites import Sites
from .resources.users import Users
from .resources.versions import Versions
from .resources.webhooks import Webhooks

__all__ = ["API_URL_ENV", "TOKEN_ENV", "Roost", "resolve_credentials"]

TOKEN_ENV = "OWLETTE_TOKEN"
API_URL_ENV = "OWLETTE_API_URL"


def resolve_credentials(token: str | None, api_url: str | None) -> tuple[str, str]:
    """The token and API URL to use: arguments win, then the environment, then the public host.

    Shared by :class:`Roost` and ``roost.sync.Roost`` so both read the environment the same way.
    A missing token is refused here, before any connection or request exists, because the
    alternative is a 401 from the server that does not say which setting was missing.
    """
    if token is None:
        token = os.environ.get(TOKEN_ENV, "").strip() or None
    if token is None:
        raise ValueError(
            f"Roost: no API token: pass token=... or set the {TOKEN_ENV} environment variable "
            "(an owk_live_* or owk_test_* key)"
        )
    if api_url is None:
        api_url = os.environ.get(API_URL_ENV, "").strip() or DEFAULT_API_URL
    return token, api_url


class Roost:
    """The Owlette API client. Use it as ``async with Roost(token=...) as client:``.

    ``token`` and ``api_url`` default to the ``OWLETTE_TOKEN`` and ``OWLETTE_API_URL`` environment
    variables (then to the public host); without a token from either, ``ValueError``.
    Resources are created lazily on first access and share one ``httpx.AsyncClient``.
    """

    def __init__(
        self,
        *,
        token: str | None = None,
        api_url: str | None = None,
        environment: Environment | None = None,
        roost_version: str = DEFAULT_ROOST_VERSION,
        retry: RetryPolicy | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        timeout: float | httpx.Timeout = 30.0,
        sleep: Sleep | None = None,
    ) -> None:
        token, api_url = resolve_credentials(token, api_url)
        self._client = RoostClient(
            token=token,
            api_url=api_url,
            roost_version=roost_version,
            environment=environment,
            retry=retry,
            transport=transport,
            timeout=timeout,
            sleep=sleep,
        )

    def __repr__(self) -> str:
        return f"Roost(api_url={self._client.api_url!r}, token='***')"

    @property
    def http(self) -> RoostClient:
        """The low-level :class:`RoostClient`, for endpoints without a helper."""
        return self._client

    async def close(self) -> None:
        """Close the connection pool (idempotent)."""
        await self._client.close()

    async def __aenter__(self) -> Roost:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    @cached_property
    def account(self) -> Account:
        return Account(self._client)

    @cached_property
    def roosts(self) -> Roosts:
        return Roosts(self._client)

    @cached_property
    def chunks(self) -> Chunks:
        return Chunks(self._client)

    @cached_property
    def versions(self) -> Versions:
        return Versions(self._client)

    @cached_property
    def deployments(self) -> Deployments:
        return Deployments(self._client)

    @cached_property
    def keys(self) -> Keys:
        return Keys(self._client)

    @cached_property
    def webhooks(self) -> Webhooks:
        return Webhooks(self._client)

    @cached_property
    def sites(self) -> Sites:
        return Sites(self._client)

    @cached_property
    def machines(self) -> Machines:
        return Machines(self._client)

    @cached_property
    def installer_deployments(self) -> InstallerDeployments:
        return InstallerDeployments(self._client)

    @cached_property
    def installer(self) -> Installer:
        return Installer(self._client)

    @cached_property
    def chat(self) -> Chat:
        return Chat(self._client)

    @cached_property
    def users(self) -> Users:
        return Users(self._client)

    @cached_property
    def quotas(self) -> Quotas:
        return Quotas(self._client)

    def processes(self, site_id: str, machine_id: str) -> Processes:
        """A handle on one machine's processes (a fresh handle each call)."""
        return Processes(self._client, site_id, machine_id)

    def members(self, site_id: str) -> Members:
        """A handle on one site's members (a fresh handle each call)."""
        return Members(self._client, site_id)
