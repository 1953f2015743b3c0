from __future__ import annotations

import pytest

from roost.testing.pytest_plugin import pytest_configure, roost_server, roost_server_session

__all__ = ["anyio_backend", "pytest_configure", "roost_server", "roost_server_session"]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"
