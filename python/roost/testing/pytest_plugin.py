"""pytest fixtures for the local Owlette API emulator.

Enable with ``pytest_plugins = ["roost.testing.pytest_plugin"]`` in a root ``conftest.py`` (or
``-p roost.testing.pytest_plugin``). The ``roost_server`` fixture yields a running
:class:`roost.testing.EmulatorServer` with fresh state; options go through a marker::

    @pytest.mark.roost_server(faults="api_5xx=0.2,seed=7", upload_url_ttl_s=2)
    def test_retries(roost_server): ...

Starlette and uvicorn are imported only when the fixture runs, so importing this module never
fails without the ``server`` extra.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from ._server import EmulatorServer

__all__ = ["pytest_configure", "roost_server", "roost_server_session"]


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "roost_server(**options): options for the roost_server fixture (see roost.testing.serve)"
    )


def _options(request: pytest.FixtureRequest) -> dict[str, Any]:
    marker = request.node.get_closest_marker("roost_server")
    return dict(marker.kwargs) if marker is not None else {}


@pytest.fixture
def roost_server(request: pytest.FixtureRequest) -> Iterator[EmulatorServer]:
    """A running emulator with fresh state for one test (``.url``, ``.token``, ``.site_id``)."""
    from . import start_server

    server = start_server(**_options(request))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def roost_server_session() -> Iterator[EmulatorServer]:
    """One emulator shared by the whole session (faster; state accumulates)."""
    from . import start_server

    server = start_server()
    try:
        yield server
    finally:
        server.stop()
