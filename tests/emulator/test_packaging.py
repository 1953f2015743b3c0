"""How the emulator is consumed: ``serve()``, the fixture module, and lazy imports."""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

import roost.testing
from roost.testing import serve

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.anyio
async def test_serve_context_manager(tmp_path: Path) -> None:
    async with serve(data_dir=tmp_path / "data", site_id="ctx-site") as server:
        assert server.url.startswith("http://127.0.0.1:")
        assert server.site_id == "ctx-site"
        assert server.data_dir == (tmp_path / "data").resolve()
        async with httpx.AsyncClient(base_url=server.url, headers=server.headers()) as client:
            assert (await client.get("/api/whoami")).status_code == 200
    assert (tmp_path / "data" / "meta.sqlite3").is_file()
    async with httpx.AsyncClient() as client:
        with pytest.raises(httpx.TransportError):
            await client.get(f"{server.url}/api/version", timeout=2)


def test_explicit_token_is_honoured() -> None:
    token = "owk_test_" + "A" * 43
    with roost.testing.start_server(token=token) as server:
        assert server.token == token
        response = httpx.get(f"{server.url}/api/whoami", headers=server.headers())
        assert response.json()["key"]["keyPrefix"] == token[:15]


def test_imports_do_not_need_the_server_extra() -> None:
    code = (
        "import sys\n"
        "sys.modules['starlette'] = None\n"
        "sys.modules['uvicorn'] = None\n"
        "import roost.testing, roost.testing.pytest_plugin\n"
        "print(roost.testing.Faults.parse('seed=3').seed)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT / "python")}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "3"


def test_keep_alive_responses_are_not_delayed(roost_server: roost.testing.EmulatorServer) -> None:
    """TCP_NODELAY on accepted sockets: no ~40 ms Nagle/delayed-ACK stall per keep-alive call."""
    timings = []
    with httpx.Client(base_url=roost_server.url, headers=roost_server.headers()) as client:
        client.get("/api/version")
        for _ in range(11):
            started = time.perf_counter()
            assert client.get("/api/version").status_code == 200
            timings.append(time.perf_counter() - started)
    assert statistics.median(timings) < 0.03, timings
