"""client.account and client.keys: typed identity, key records, the keyId/id alias."""

from __future__ import annotations

import pytest

from roost import (
    AccountKeyContext,
    ApiKeyRecord,
    ApiKeyScope,
    ApiVersionResponse,
    MalformedResponseError,
    Roost,
    RoostApiError,
    WhoamiResponse,
)

from .conftest import MockApi

pytestmark = pytest.mark.anyio

KEY_ID = "0f6b6c1e-4d3a-4c1f-9b1a-2f3c4d5e6f70"


async def test_whoami_typed(api: MockApi, client: Roost) -> None:
    api.reply(
        "GET",
        "/api/whoami",
        {
            "userId": "uid-1",
            "email": "ops@example.com",
            "role": "admin",
            "key": {
                "keyId": KEY_ID,
                "name": "ci",
                "keyPrefix": "owk_test_abcdef",
                "environment": "test",
                "scopes": [
                    {"resource": "site", "id": "site-1", "permissions": ["read", "bogus"]},
                    {"resource": "mystery", "id": "*", "permissions": ["write"]},
                ],
                "expiresAt": 1767225600000,
                "lastUsedAt": None,
                "isLegacy": False,
            },
            "rateLimit": {"tier": "api", "limitPerMinute": 600},
            "quota": None,
            "primarySiteId": "site-1",
            "brandNewField": 1,
        },
    )
    identity = await client.account.whoami()
    assert isinstance(identity, WhoamiResponse)
    assert identity.primary_site_id == "site-1"
    assert isinstance(identity.key, AccountKeyContext)
    assert identity.key.key_prefix == "owk_test_abcdef"
    assert identity.key.scopes == [
        ApiKeyScope("site", "site-1", ["read"]),
        ApiKeyScope("site", "*", ["write"]),
    ]
    assert identity.key.expires_at == 1767225600000
    assert identity.key.last_used_at is None
    assert identity.quota is None
    assert identity.rate_limit == {"tier": "api", "limitPerMinute": 600}
    assert api.last.headers["authorization"] == "Bearer owk_test_x"
    assert api.last.headers["roost-version"] == "2026-04-22"


async def test_whoami_session_caller(api: MockApi, client: Roost) -> None:
    api.reply("GET", "/api/whoami", {"userId": "uid-1", "email": None, "key": None, "primarySiteId": None})
    identity = await client.account.whoami()
    assert identity.key is None
    assert identity.email is None
    assert identity.primary_site_id is None


async def test_version(api: MockApi, client: Roost) -> None:
    api.reply("GET", "/api/version", {"current": "2026-04-22", "supported": ["2026-04-22"]})
    v = await client.account.version()
    assert v == ApiVersionResponse(current="2026-04-22", supported=["2026-04-22"], deprecated=[], retired=[])


async def test_api_keys_list_create_revoke(api: MockApi, client: Roost) -> None:
    api.reply(
        "GET",
        "/api/account/api-keys",
        {
            "success": True,
            "keys": [
                {
                    "id": KEY_ID,
                    "name": "preview",
                    "keyPrefix": "owk_live_abcdef",
                    "environment": "live",
                    "scopes": None,
                    "expiresAt": 1,
                    "createdAt": 2,
                    "lastUsedAt": None,
                },
            ],
        },
    )
    keys = await client.account.api_keys.list()
    assert keys == [
        ApiKeyRecord(
            id=KEY_ID,
            name="preview",
            key_prefix="owk_live_abcdef",
            environment="live",
            expires_at=1,
            created_at=2,
        )
    ]

    api.reply(
        "POST",
        "/api/account/api-keys",
        {
            "success": True,
            "key": "owk_live_" + "x" * 43,
            "keyId": KEY_ID,
            "name": "preview publisher",
            "environment": "live",
            "scopes": [],
            "expiresAt": 1,
            "keyPrefix": "owk_live_xxxxxx",
        },
    )
    created = await client.account.api_keys.create(name="preview publisher")
    assert api.last.body == {"name": "preview publisher"}
    assert created["keyId"] == KEY_ID
    assert created["id"] == KEY_ID

    api.reply("POST", "/api/account/api-keys", {"keyId": KEY_ID})
    await client.account.api_keys.create()
    assert api.last.body == {}

    api.reply("DELETE", f"/api/account/api-keys/{KEY_ID}", {"success": True})
    await client.account.api_keys.revoke(created["keyId"])
    assert api.last.body is None


async def test_api_keys_list_malformed_row(api: MockApi, client: Roost) -> None:
    api.reply("GET", "/api/account/api-keys", {"keys": [{"name": "no id"}]})
    with pytest.raises(MalformedResponseError, match="'id' or 'keyId'"):
        await client.account.api_keys.list()


async def test_whoami_malformed(api: MockApi, client: Roost) -> None:
    api.reply("GET", "/api/whoami", content="[1]", headers={"content-type": "application/json"})
    with pytest.raises(MalformedResponseError, match="/api/whoami"):
        await client.account.whoami()


async def test_keys_create_sends_scopes_and_aliases_id(api: MockApi, client: Roost) -> None:
    api.reply(
        "POST",
        "/api/keys",
        {
            "success": True,
            "key": "owk_live_secret",
            "keyId": KEY_ID,
            "name": "ci publisher",
            "environment": "live",
            "scopes": [],
            "expiresAt": 1,
            "keyPrefix": "owk_live_secret"[:15],
        },
    )
    created = await client.keys.create(
        name="ci publisher",
        environment="live",
        scopes=[
            ApiKeyScope(resource="site", id="site-1", permissions=["read"]),
            ApiKeyScope(resource="roost", id="*", permissions=["read", "write", "deploy"]),
        ],
        ttl_days=90,
    )
    assert api.last.body == {
        "name": "ci publisher",
        "scopes": [
            {"resource": "site", "id": "site-1", "permissions": ["read"]},
            {"resource": "roost", "id": "*", "permissions": ["read", "write", "deploy"]},
        ],
        "ttlDays": 90,
        "environment": "live",
    }
    assert created["key"] == "owk_live_secret"
    assert created["id"] == created["keyId"] == KEY_ID

    api.reply(
        "POST",
        f"/api/keys/{KEY_ID}/rotate",
        {
            "success": True,
            "key": "owk_live_new",
            "keyId": "new-id-1",
            "rotatedFromKeyId": KEY_ID,
            "previousKey": {"keyId": KEY_ID, "retiresAt": 5},
        },
    )
    rotated = await client.keys.rotate(created["id"], ttl_days=30)
    assert api.last.body == {"ttlDays": 30}
    assert rotated["id"] == rotated["keyId"] == "new-id-1"

    api.reply("DELETE", f"/api/keys/{KEY_ID}", {"success": True})
    await client.keys.revoke(created["id"])


async def test_keys_defaults_and_dict_scopes(api: MockApi, client: Roost) -> None:
    api.reply("POST", "/api/keys", {"keyId": KEY_ID, "id": "server-id"})
    created = await client.keys.create(
        name="k", scopes=[{"resource": "site", "id": "*", "permissions": ["read"]}]
    )
    assert api.last.body["ttlDays"] == 90
    assert api.last.body["environment"] == "live"
    assert created["id"] == "server-id"  # the alias never overwrites a real field

    api.reply("POST", f"/api/keys/{KEY_ID}/rotate", {"keyId": "n"})
    await client.keys.rotate(KEY_ID)
    assert api.last.body == {"ttlDays": 90}


async def test_keys_create_needs_scopes(api: MockApi, client: Roost) -> None:
    with pytest.raises(ValueError, match="scopes"):
        await client.keys.create(name="k", scopes=[])
    assert api.calls == []


async def test_keys_list_typed(api: MockApi, client: Roost) -> None:
    api.reply(
        "GET",
        "/api/keys",
        {
            "success": True,
            "keys": [
                {
                    "id": "k1",
                    "name": "ci",
                    "keyPrefix": "owk_live_abcdef",
                    "environment": "live",
                    "scopes": [{"resource": "roost", "id": "*", "permissions": ["deploy"]}],
                    "expiresAt": 10,
                    "createdAt": {"_seconds": 1, "_nanoseconds": 0},
                    "lastUsedAt": None,
                    "rotatedAt": None,
                    "rotatedFromKeyId": None,
                    "retiresAt": None,
                    "revokedAt": None,
                },
            ],
        },
    )
    keys = await client.keys.list()
    k = keys[0]
    assert (k.id, k.key_prefix, k.environment) == ("k1", "owk_live_abcdef", "live")
    assert k.scopes == [ApiKeyScope("roost", "*", ["deploy"])]
    assert k.created_at is None  # a Firestore timestamp object is not an ms int


async def test_keys_forbidden_for_api_key_callers(api: MockApi, client: Roost) -> None:
    api.problem("POST", "/api/keys", 403, "forbidden")
    with pytest.raises(RoostApiError) as info:
        await client.keys.create(name="k", scopes=[ApiKeyScope("site", "*", ["read"])])
    assert info.value.status == 403
