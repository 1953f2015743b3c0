"""``Roost()`` reads ``OWLETTE_TOKEN`` / ``OWLETTE_API_URL`` when the arguments are absent."""

from __future__ import annotations

import httpx
import pytest

from roost import DEFAULT_API_URL, Roost

pytestmark = pytest.mark.anyio


def recorder() -> tuple[list[httpx.Request], httpx.MockTransport]:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"current": "2026-04-22", "supported": []})

    return seen, httpx.MockTransport(handler)


async def test_environment_supplies_token_and_api_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OWLETTE_TOKEN", "owk_test_from_env")
    monkeypatch.setenv("OWLETTE_API_URL", "http://127.0.0.1:9/")
    seen, transport = recorder()
    async with Roost(transport=transport) as client:
        assert client.http.api_url == "http://127.0.0.1:9"
        await client.http.request("/api/version")
    assert seen[0].headers["authorization"] == "Bearer owk_test_from_env"
    assert str(seen[0].url) == "http://127.0.0.1:9/api/version"


async def test_arguments_win_over_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OWLETTE_TOKEN", "owk_test_from_env")
    monkeypatch.setenv("OWLETTE_API_URL", "http://env.invalid")
    seen, transport = recorder()
    async with Roost(token="owk_test_arg", api_url="https://arg.test", transport=transport) as client:
        await client.http.request("/api/version")
    assert seen[0].headers["authorization"] == "Bearer owk_test_arg"
    assert seen[0].url.host == "arg.test"


def test_without_api_url_anywhere_the_public_host_is_used(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OWLETTE_API_URL", raising=False)
    assert Roost(token="owk_test_x").http.api_url == DEFAULT_API_URL
    monkeypatch.setenv("OWLETTE_API_URL", "   ")
    assert Roost(token="owk_test_x").http.api_url == DEFAULT_API_URL


@pytest.mark.parametrize("env_value", [None, "", "   "])
def test_missing_token_is_refused_at_construction_naming_both_sources(
    monkeypatch: pytest.MonkeyPatch, env_value: str | None
) -> None:
    if env_value is None:
        monkeypatch.delenv("OWLETTE_TOKEN", raising=False)
    else:
        monkeypatch.setenv("OWLETTE_TOKEN", env_value)
    seen, transport = recorder()
    with pytest.raises(ValueError, match="OWLETTE_TOKEN") as caught:
        Roost(transport=transport)
    assert "token=" in str(caught.value)
    assert seen == []
