"""The emulator's responses on the SDK's routes, validated against ``shared/spec/openapi.yaml``.

Where the document is right, responses (and the requests the SDK sends) must validate. Where it is
known to be stale (api-contract §12.3, server-semantics §14, and the few schema mismatches the
server code contradicts), the case or the single field is skipped by name with the reason.

The document is OpenAPI 3.1 but written with two 3.0 habits that a 3.1 validator misreads; both
are read the way the author meant them before validating: ``nullable: true`` adds ``null`` to the
type, and YAML 1.1 booleans (``off`` in the launch-mode enum) stay strings.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import httpx
import pytest
import yaml
from openapi_core import Config, OpenAPI
from openapi_core.datatypes import RequestParameters
from werkzeug.datastructures import Headers, ImmutableMultiDict

from roost.testing import EmulatorServer, start_server

from ._helpers import make_version, sha

ROOT = Path(__file__).resolve().parents[2]
SPEC = Path(os.environ.get("ROOST_OPENAPI_SPEC", ROOT.parent / "shared" / "spec" / "openapi.yaml"))

# Whole cases whose OpenAPI description is stale against the server code (skipped by name).
STALE: dict[str, str] = {
    "GET /api/version": "OAS requires deprecated/retired; the server returns current/supported only (api-contract 12.3)",
    "GET /api/roosts": "OAS RoostSummary uses id/totalSize/totalFiles; the server returns roostId... (api-contract 12.3)",
    "POST /api/roosts": "OAS wants siteId in the query and a full Roost back; the server reads the body and returns "
    "{roostId, siteId, name, targets} (server-semantics 14.3, api-contract 12.3)",
    "GET /api/roosts/{roostId}": "OAS Roost uses id/totalSize/totalFiles (api-contract 12.3)",
    "PATCH /api/roosts/{roostId}": "OAS returns a full Roost; the server returns {roostId, siteId, updated} (12.3)",
    "DELETE /api/roosts/{roostId}": "OAS deleted/versionsDeleted; the server returns softDeleted/tombstoneExpiresAt (12.3)",
    "GET /api/roosts/{roostId}/versions/{versionRef}": "OAS VersionDetail (id, publishedAt, isCurrent, OCI layers) is "
    "stale (api-contract 12.3)",
    "GET /api/roosts/{roostId}/versions/{versionRef} (400 malformed ref)": "OAS lists no 400 although the server "
    "answers version_ref_malformed (server-semantics 6.1)",
    "GET /api/roosts/{roostId}/versions/{versionRef}/files": "OAS VersionFile.digest sha256: is stale (12.3)",
    "GET /api/roosts/{roostId}/versions/{versionRef}/diff": "OAS DiffResult from/to/digestBefore is stale (12.3)",
    "POST /api/roosts/{roostId}/deploy (dry run)": "OAS requires sha256: versionId/strategy and has no 200 (12.3)",
    "POST /api/roosts/{roostId}/deploy": "OAS requires sha256: versionId/strategy/machines[] (api-contract 12.3)",
    "GET /api/roosts/{roostId}/deployments": "OAS DeploymentStatus (strategy, state) is stale (api-contract 12.3)",
    "GET /api/roosts/{roostId}/deployments/{rolloutId}": "OAS rollout id pattern ^rollout_ is stale; rolloutId is "
    "the versionId (api-contract 12.3)",
    "POST /api/chunks/{digest}/mount": "OAS 200 with a {siteId, toRoostId} body; the server answers 201 and reads "
    "the query (api-contract 12.3)",
    "POST /api/chunks/download-urls": "OAS documents only GET with comma-separated hashes; the server (and SDK) use "
    "POST / repeated hash params (api-contract 12.3)",
    "GET /api/chunks/download-urls": "OAS documents comma-separated `hashes`; the server reads repeated `hash` "
    "params (api-contract 12.3)",
    "POST /api/webhooks/{webhookId}/rotate-secret": "OAS reuses the subscription schema; the server returns "
    "{id, siteId, signingSecret, previousSecretValidUntil, gracePeriodHours, rotatedAt} (server-semantics 10.1)",
    "GET /api/keys": "key timestamps are Unix ms numbers and createdAt raw Firestore JSON in the server code "
    "(server-semantics 0.1, 11.10); OAS says strings",
    "GET /api/account/api-keys": "key expiresAt/lastUsedAt are Unix ms numbers in the server code "
    "(server-semantics 0.1, 11.10); OAS says strings",
}

# Requests the SDK sends that the OAS describes wrongly (the response is still validated).
STALE_REQUEST: dict[str, str] = {
    "POST /api/roosts/{roostId}/versions": "OAS OciVersion.config requires name/createdAt/createdBy/siteId; the "
    "server accepts any object (server-semantics 14.4)",
    "POST /api/roosts/{roostId}/versions (412 missing chunks)": "OAS OciVersion.config requires name/createdBy/"
    "siteId (server-semantics 14.4)",
    "POST /api/roosts/{roostId}/versions (412 version_stale)": "OAS OciVersion.config requires name/createdBy/"
    "siteId (server-semantics 14.4)",
    "GET /api/roosts (401 no credential)": "deliberately unauthenticated",
}

# Every case the scenario records (one SDK call or error shape each).
CASES: tuple[str, ...] = (
    "POST /api/chunks/check",
    "POST /api/chunks/upload-urls",
    "POST /api/chunks/download-urls",
    "GET /api/chunks/download-urls",
    "POST /api/roosts/{roostId}/versions",
    "POST /api/roosts/{roostId}/versions (412 missing chunks)",
    "POST /api/roosts/{roostId}/versions (412 version_stale)",
    "GET /api/whoami",
    "GET /api/version",
    "GET /api/roosts",
    "POST /api/roosts",
    "GET /api/roosts/{roostId}",
    "PATCH /api/roosts/{roostId}",
    "GET /api/roosts/{roostId}/versions",
    "GET /api/roosts/{roostId}/versions/{versionRef}",
    "GET /api/roosts/{roostId}/versions/{versionRef} (400 malformed ref)",
    "GET /api/roosts/{roostId}/versions/{versionRef} (404)",
    "PATCH /api/roosts/{roostId}/versions/{versionRef}",
    "GET /api/roosts/{roostId}/versions/{versionRef}/files",
    "GET /api/roosts/{roostId}/versions/{versionRef}/diff",
    "POST /api/roosts/{roostId}/rollback",
    "POST /api/roosts/{roostId}/deploy (dry run)",
    "POST /api/roosts/{roostId}/deploy",
    "GET /api/roosts/{roostId}/deployments",
    "GET /api/roosts/{roostId}/deployments/{rolloutId}",
    "POST /api/chunks/{digest}/mount",
    "GET /api/chunks/{digest}/referrers",
    "DELETE /api/roosts/{roostId}",
    "GET /api/sites",
    "GET /api/sites/{siteId}",
    "GET /api/sites/{siteId}/quota",
    "GET /api/sites/{siteId}/quota/history",
    "POST /api/webhooks",
    "GET /api/webhooks",
    "GET /api/webhooks/{webhookId}",
    "PATCH /api/webhooks/{webhookId}",
    "POST /api/webhooks/{webhookId}/rotate-secret",
    "GET /api/webhooks/{webhookId}/deliveries",
    "GET /api/webhooks/{webhookId}/deliveries/{deliveryId}",
    "POST /api/webhooks/{webhookId}/deliveries/{deliveryId}/retry",
    "POST /api/webhooks/probe",
    "DELETE /api/webhooks/{webhookId}",
    "GET /api/sites/{siteId}/machines",
    "GET /api/sites/{siteId}/machines/{machineId}",
    "GET /api/sites/{siteId}/machines/{machineId}/deployments",
    "POST /api/sites/{siteId}/machines/{machineId}/commands",
    "GET /api/sites/{siteId}/machines/{machineId}/commands/{commandId}",
    "POST /api/sites/{siteId}/machines/{machineId}/processes",
    "GET /api/sites/{siteId}/machines/{machineId}/processes",
    "GET /api/sites/{siteId}/machines/{machineId}/processes/{processId}",
    "PATCH /api/sites/{siteId}/machines/{machineId}/processes/{processId}",
    "POST /api/sites/{siteId}/machines/{machineId}/processes/{processId}/kill",
    "POST /api/sites/{siteId}/machines/{machineId}/processes/{processId}/start",
    "POST /api/sites/{siteId}/machines/{machineId}/processes/{processId}/stop",
    "POST /api/sites/{siteId}/machines/{machineId}/processes/{processId}/schedule",
    "DELETE /api/sites/{siteId}/machines/{machineId}/processes/{processId}",
    "POST /api/sites/{siteId}/deployments",
    "GET /api/sites/{siteId}/deployments",
    "GET /api/sites/{siteId}/deployments/{deploymentId}",
    "POST /api/sites/{siteId}/deployments/{deploymentId}/cancel",
    "POST /api/sites/{siteId}/deployments/{deploymentId}/retry (409 no failed targets)",
    "POST /api/sites/{siteId}/deployments/{deploymentId}/uninstall (409 no targets)",
    "DELETE /api/sites/{siteId}/deployments/{deploymentId}",
    "DELETE /api/sites/{siteId}/machines/{machineId}",
    "GET /api/sites/{siteId}/members",
    "POST /api/sites/{siteId}/members",
    "DELETE /api/sites/{siteId}/members/{uid}",
    "GET /api/users",
    "GET /api/users/{uid}",
    "POST /api/users/{uid}/promote",
    "POST /api/users/{uid}/demote",
    "POST /api/users/{uid}/assign-sites",
    "POST /api/users/{uid}/remove-sites",
    "DELETE /api/users/{uid}",
    "POST /api/installer/upload",
    "PUT /api/installer/upload",
    "GET /api/installer",
    "GET /api/installer/latest",
    "POST /api/installer/{version}/set-latest",
    "DELETE /api/installer/{version} (409 latest protected)",
    "POST /api/cortex/conversations",
    "GET /api/cortex/conversations",
    "POST /api/cortex/conversations/{conversationId}",
    "PATCH /api/cortex/conversations/{conversationId}",
    "DELETE /api/cortex/conversations/{conversationId}",
    "GET /api/account/api-keys",
    "POST /api/account/api-keys",
    "DELETE /api/account/api-keys/{keyId}",
    "GET /api/roosts/{roostId} (404)",
    "GET /api/roosts (401 no credential)",
    "POST /api/keys",
    "GET /api/keys",
    "POST /api/keys/{keyId}/rotate",
    "DELETE /api/keys/{keyId}",
)


@dataclass
class Exchange:
    name: str
    response: httpx.Response


def _load_spec() -> OpenAPI:
    class Loader(yaml.SafeLoader):
        pass

    # YAML 1.1 booleans (on/off/yes/no) stay strings: the document means the launch mode "off".
    Loader.yaml_implicit_resolvers = {
        key: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:bool"]
        for key, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
    }
    Loader.add_implicit_resolver(
        "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
    )
    with SPEC.open(encoding="utf-8") as handle:
        document = yaml.load(handle, Loader=Loader)

    def fix(node: Any) -> Any:
        if isinstance(node, dict):
            fixed = {k: fix(v) for k, v in node.items()}
            if fixed.pop("nullable", False) is True:
                kind = fixed.get("type")
                if isinstance(kind, str):
                    fixed["type"] = [kind, "null"]
                elif isinstance(kind, list) and "null" not in kind:
                    fixed["type"] = [*kind, "null"]
                if isinstance(fixed.get("enum"), list) and None not in fixed["enum"]:
                    fixed["enum"] = [*fixed["enum"], None]
            return fixed
        if isinstance(node, list):
            return [fix(item) for item in node]
        return node

    config = Config(extra_media_type_deserializers={"application/problem+json": _problem_json})
    return OpenAPI.from_dict(fix(document), config=config)


def _problem_json(value: bytes | str, **parameters: str) -> Any:
    """``application/problem+json`` is JSON (openapi-core passes media-type parameters like charset)."""
    return json.loads(value)


class _Request:
    host_url = "https://owlette.app"
    full_url_pattern = None

    def __init__(self, request: httpx.Request) -> None:
        self.path = request.url.path
        self.method = request.method.lower()
        query = request.url.query.decode() if isinstance(request.url.query, bytes) else str(request.url.query)
        self.parameters = RequestParameters(
            query=ImmutableMultiDict(parse_qsl(query, keep_blank_values=True)),
            header=Headers(list(request.headers.items())),
            cookie=ImmutableMultiDict(),
        )
        self.content_type = request.headers.get("content-type", "")
        self.body = request.content or None


class _Response:
    def __init__(self, response: httpx.Response) -> None:
        self.status_code = response.status_code
        self.content_type = response.headers.get("content-type", "")
        self.headers = Headers(list(response.headers.items()))
        self.data = response.content


def _messages(error: BaseException) -> list[str]:
    out: list[str] = []
    cause: BaseException | None = error
    while cause is not None:
        schema_errors = getattr(cause, "schema_errors", None)
        if schema_errors:
            out.extend(f"{'.'.join(str(p) for p in e.absolute_path)}: {e.message}" for e in schema_errors)
        cause = cause.__cause__ or cause.__context__
    return out or [repr(error) + (f" <- {error.__cause__!r}" if error.__cause__ else "")]


def _scenario(server: EmulatorServer) -> dict[str, Exchange]:
    """Call every SDK route once (plus a few error shapes) and keep the responses by case name."""
    site = server.site_id
    exchanges: dict[str, Exchange] = {}

    def keep(name: str, response: httpx.Response) -> httpx.Response:
        exchanges[name] = Exchange(name, response)
        return response

    def idem(name: str) -> dict[str, str]:
        return {"Idempotency-Key": f"py-sdk-{name}"}

    with (
        httpx.Client(base_url=server.url, headers=server.headers(), timeout=30) as c,
        httpx.Client() as storage,
    ):
        version, chunks = make_version({"a": b"1", "b": b"2"}, tag="1")
        hashes = list(chunks)
        keep("POST /api/chunks/check", c.post("/api/chunks/check", json={"siteId": site, "hashes": hashes}))
        urls = keep(
            "POST /api/chunks/upload-urls",
            c.post("/api/chunks/upload-urls", json={"siteId": site, "hashes": hashes}),
        ).json()["urls"]
        for digest in hashes:
            assert storage.put(urls[digest], content=chunks[digest]).status_code == 200
        keep(
            "POST /api/chunks/download-urls",
            c.post("/api/chunks/download-urls", json={"siteId": site, "hashes": hashes}),
        )
        keep(
            "GET /api/chunks/download-urls",
            c.get("/api/chunks/download-urls", params={"siteId": site, "hash": hashes}),
        )
        publish = "/api/roosts/conformance-1/versions"
        keep(
            "POST /api/roosts/{roostId}/versions",
            c.post(publish, json={"siteId": site, "version": version}, headers=idem("publish")),
        )
        version_two, chunks_two = make_version({"a": b"1", "c": b"3"}, tag="2")
        digest_c = sha(b"3")
        more = c.post("/api/chunks/upload-urls", json={"siteId": site, "hashes": [digest_c]}).json()["urls"]
        assert storage.put(more[digest_c], content=chunks_two[digest_c]).status_code == 200
        assert (
            c.post(
                publish, json={"siteId": site, "version": version_two, "targets": ["machine-01"]}
            ).status_code
            == 201
        )
        missing, _ = make_version({"z": b"never uploaded"})
        keep(
            "POST /api/roosts/{roostId}/versions (412 missing chunks)",
            c.post(publish, json={"siteId": site, "version": missing}),
        )
        keep(
            "POST /api/roosts/{roostId}/versions (412 version_stale)",
            c.post(
                publish, json={"siteId": site, "version": version, "expectedCurrentVersionId": "stale-head"}
            ),
        )
        keep("GET /api/whoami", c.get("/api/whoami"))
        keep("GET /api/version", c.get("/api/version"))
        keep("GET /api/roosts", c.get("/api/roosts", params={"siteId": site}))
        keep(
            "POST /api/roosts",
            c.post("/api/roosts", json={"siteId": site, "name": "x", "roostId": "conformance-2"}),
        )
        keep("GET /api/roosts/{roostId}", c.get("/api/roosts/conformance-1", params={"siteId": site}))
        keep(
            "PATCH /api/roosts/{roostId}",
            c.patch("/api/roosts/conformance-2", json={"siteId": site, "name": "y"}),
        )
        keep("GET /api/roosts/{roostId}/versions", c.get(publish, params={"siteId": site}))
        keep(
            "GET /api/roosts/{roostId}/versions/{versionRef}",
            c.get(f"{publish}/1", params={"siteId": site}),
        )
        keep(
            "GET /api/roosts/{roostId}/versions/{versionRef} (400 malformed ref)",
            c.get(f"{publish}/03", params={"siteId": site}),
        )
        keep(
            "GET /api/roosts/{roostId}/versions/{versionRef} (404)",
            c.get(f"{publish}/99", params={"siteId": site}),
        )
        keep(
            "PATCH /api/roosts/{roostId}/versions/{versionRef}",
            c.patch(f"{publish}/1", json={"siteId": site, "description": "first"}, headers=idem("patch")),
        )
        keep(
            "GET /api/roosts/{roostId}/versions/{versionRef}/files",
            c.get(f"{publish}/1/files", params={"siteId": site}),
        )
        keep(
            "GET /api/roosts/{roostId}/versions/{versionRef}/diff",
            c.get(f"{publish}/2/diff", params={"siteId": site, "against": "1"}),
        )
        keep(
            "POST /api/roosts/{roostId}/rollback",
            c.post("/api/roosts/conformance-1/rollback", json={"siteId": site}, headers=idem("rollback")),
        )
        keep(
            "POST /api/roosts/{roostId}/deploy (dry run)",
            c.post("/api/roosts/conformance-1/deploy", json={"siteId": site, "dryRun": True}),
        )
        keep(
            "POST /api/roosts/{roostId}/deploy",
            c.post("/api/roosts/conformance-1/deploy", json={"siteId": site}),
        )
        rollouts = keep(
            "GET /api/roosts/{roostId}/deployments",
            c.get("/api/roosts/conformance-1/deployments", params={"siteId": site}),
        )
        rollout_id = rollouts.json()["rollouts"][0]["rolloutId"]
        keep(
            "GET /api/roosts/{roostId}/deployments/{rolloutId}",
            c.get(f"/api/roosts/conformance-1/deployments/{rollout_id}", params={"siteId": site}),
        )
        keep(
            "POST /api/chunks/{digest}/mount",
            c.post(
                f"/api/chunks/{hashes[0]}/mount",
                params={"siteId": site, "from": "conformance-1", "to": "conformance-2"},
            ),
        )
        keep(
            "GET /api/chunks/{digest}/referrers",
            c.get(f"/api/chunks/{hashes[0]}/referrers", params={"siteId": site}),
        )
        keep("DELETE /api/roosts/{roostId}", c.delete("/api/roosts/conformance-2", params={"siteId": site}))
        keep("GET /api/sites", c.get("/api/sites"))
        keep("GET /api/sites/{siteId}", c.get(f"/api/sites/{site}"))
        keep("GET /api/sites/{siteId}/quota", c.get(f"/api/sites/{site}/quota"))
        keep(
            "GET /api/sites/{siteId}/quota/history",
            c.get(f"/api/sites/{site}/quota/history", params={"period": "7d"}),
        )

        hooks = {"siteId": site}
        created = keep(
            "POST /api/webhooks",
            # a loopback receiver (allowed unless strict_webhook_urls): the emulator itself answers 405
            c.post(
                "/api/webhooks",
                params=hooks,
                json={"url": f"{server.url}/api/version", "events": ["version.published"]},
            ),
        )
        webhook = created.json()["id"]
        keep("GET /api/webhooks", c.get("/api/webhooks", params=hooks))
        keep("GET /api/webhooks/{webhookId}", c.get(f"/api/webhooks/{webhook}", params=hooks))
        keep(
            "PATCH /api/webhooks/{webhookId}",
            c.patch(f"/api/webhooks/{webhook}", params=hooks, json={"paused": True}),
        )
        keep(
            "POST /api/webhooks/{webhookId}/rotate-secret",
            c.post(f"/api/webhooks/{webhook}/rotate-secret", params=hooks, json={}),
        )
        c.patch(f"/api/webhooks/{webhook}", params=hooks, json={"paused": False})
        version_three, chunks_three = make_version({"a": b"1", "d": b"4"}, tag="3")
        digest_d = sha(b"4")
        more = c.post("/api/chunks/upload-urls", json={"siteId": site, "hashes": [digest_d]}).json()["urls"]
        assert storage.put(more[digest_d], content=chunks_three[digest_d]).status_code == 200
        assert c.post(publish, json={"siteId": site, "version": version_three}).status_code == 201
        for _ in range(200):
            history = c.get(f"/api/webhooks/{webhook}/deliveries", params=hooks)
            if history.json()["deliveries"] and history.json()["deliveries"][0]["state"] != "pending":
                break
            time.sleep(0.02)
        keep("GET /api/webhooks/{webhookId}/deliveries", history)
        delivery = history.json()["deliveries"][0]["id"]
        keep(
            "GET /api/webhooks/{webhookId}/deliveries/{deliveryId}",
            c.get(f"/api/webhooks/{webhook}/deliveries/{delivery}", params=hooks),
        )
        keep(
            "POST /api/webhooks/{webhookId}/deliveries/{deliveryId}/retry",
            c.post(f"/api/webhooks/{webhook}/deliveries/{delivery}/retry", params=hooks, json={}),
        )
        keep(
            "POST /api/webhooks/probe",
            c.post(
                "/api/webhooks/probe",
                params=hooks,
                json={"url": "http://127.0.0.1:9/closed", "event": "version.published"},
            ),
        )
        keep("DELETE /api/webhooks/{webhookId}", c.delete(f"/api/webhooks/{webhook}", params=hooks))

        machines = f"/api/sites/{site}/machines"
        keep("GET /api/sites/{siteId}/machines", c.get(machines))
        keep("GET /api/sites/{siteId}/machines/{machineId}", c.get(f"{machines}/machine-01"))
        keep(
            "GET /api/sites/{siteId}/machines/{machineId}/deployments",
            c.get(f"{machines}/machine-01/deployments"),
        )
        command = keep(
            "POST /api/sites/{siteId}/machines/{machineId}/commands",
            c.post(
                f"{machines}/machine-01/commands",
                json={"type": "reboot_machine", "params": {}},
                headers=idem("cmd"),
            ),
        )
        command_id = command.json()["data"]["commandId"]
        keep(
            "GET /api/sites/{siteId}/machines/{machineId}/commands/{commandId}",
            c.get(f"{machines}/machine-01/commands/{command_id}"),
        )
        processes = f"{machines}/machine-01/processes"
        created_process = keep(
            "POST /api/sites/{siteId}/machines/{machineId}/processes",
            c.post(processes, json={"name": "td", "exe_path": "C:/td.exe"}, headers=idem("proc")),
        )
        process_id = created_process.json()["data"]["processId"]
        process = f"{processes}/{process_id}"
        keep("GET /api/sites/{siteId}/machines/{machineId}/processes", c.get(processes))
        keep("GET /api/sites/{siteId}/machines/{machineId}/processes/{processId}", c.get(process))
        keep(
            "PATCH /api/sites/{siteId}/machines/{machineId}/processes/{processId}",
            c.patch(process, json={"cwd": "C:/"}, headers=idem("proc-patch")),
        )
        for verb in ("kill", "start", "stop"):
            keep(
                f"POST /api/sites/{{siteId}}/machines/{{machineId}}/processes/{{processId}}/{verb}",
                c.post(f"{process}/{verb}", json={}, headers=idem(f"proc-{verb}")),
            )
        keep(
            "POST /api/sites/{siteId}/machines/{machineId}/processes/{processId}/schedule",
            c.post(f"{process}/schedule", json={"mode": "always"}, headers=idem("proc-schedule")),
        )
        keep("DELETE /api/sites/{siteId}/machines/{machineId}/processes/{processId}", c.delete(process))

        deployments = f"/api/sites/{site}/deployments"
        created_deployment = keep(
            "POST /api/sites/{siteId}/deployments",
            c.post(
                deployments,
                json={
                    "name": "n",
                    "installer_name": "i.exe",
                    "installer_url": "https://example.com/i.exe",
                    "silent_flags": "/S",
                    "machines": ["machine-01"],
                },
                headers=idem("dep"),
            ),
        )
        deployment = f"{deployments}/{created_deployment.json()['deploymentId']}"
        keep("GET /api/sites/{siteId}/deployments", c.get(deployments))
        keep("GET /api/sites/{siteId}/deployments/{deploymentId}", c.get(deployment))
        keep(
            "POST /api/sites/{siteId}/deployments/{deploymentId}/cancel",
            c.post(f"{deployment}/cancel", json={}, headers=idem("dep-cancel")),
        )
        keep(
            "POST /api/sites/{siteId}/deployments/{deploymentId}/retry (409 no failed targets)",
            c.post(f"{deployment}/retry", json={}, headers=idem("dep-retry")),
        )
        keep(
            "POST /api/sites/{siteId}/deployments/{deploymentId}/uninstall (409 no targets)",
            c.post(f"{deployment}/uninstall", json={}, headers=idem("dep-uninstall")),
        )
        keep(
            "DELETE /api/sites/{siteId}/deployments/{deploymentId}",
            c.request("DELETE", deployment, json={}, headers=idem("dep-delete")),
        )
        server.add_machine("spare-machine")
        keep(
            "DELETE /api/sites/{siteId}/machines/{machineId}",
            c.delete(f"{machines}/spare-machine", headers=idem("machine-delete")),
        )

        server.add_user("conformance-user", role="member", sites=[])
        keep("GET /api/sites/{siteId}/members", c.get(f"/api/sites/{site}/members"))
        keep(
            "POST /api/sites/{siteId}/members",
            c.post(f"/api/sites/{site}/members", json={"uid": "conformance-user", "role": "member"}),
        )
        keep(
            "DELETE /api/sites/{siteId}/members/{uid}",
            c.delete(f"/api/sites/{site}/members/conformance-user"),
        )
        keep("GET /api/users", c.get("/api/users"))
        keep("GET /api/users/{uid}", c.get("/api/users/conformance-user"))
        keep(
            "POST /api/users/{uid}/promote",
            c.post("/api/users/conformance-user/promote", json={"role": "admin"}),
        )
        keep("POST /api/users/{uid}/demote", c.post("/api/users/conformance-user/demote", json={}))
        keep(
            "POST /api/users/{uid}/assign-sites",
            c.post("/api/users/conformance-user/assign-sites", json={"siteIds": [site]}),
        )
        keep(
            "POST /api/users/{uid}/remove-sites",
            c.post("/api/users/conformance-user/remove-sites", json={"siteIds": [site]}),
        )
        keep("DELETE /api/users/{uid}", c.delete("/api/users/conformance-user"))

        binary = b"installer bytes"
        upload = keep(
            "POST /api/installer/upload",
            c.post(
                "/api/installer/upload",
                json={"version": "1.0.0", "fileName": "Owlette.exe", "setAsLatest": True},
                headers=idem("installer"),
            ),
        ).json()
        assert storage.put(upload["uploadUrl"], content=binary).status_code == 200
        keep(
            "PUT /api/installer/upload",
            c.put(
                "/api/installer/upload",
                json={"uploadId": upload["uploadId"], "checksum_sha256": hashlib.sha256(binary).hexdigest()},
                headers=idem("installer"),
            ),
        )
        keep("GET /api/installer", c.get("/api/installer"))
        keep("GET /api/installer/latest", c.get("/api/installer/latest"))
        keep(
            "POST /api/installer/{version}/set-latest",
            c.post("/api/installer/1.0.0/set-latest", json={}, headers=idem("latest")),
        )
        keep("DELETE /api/installer/{version} (409 latest protected)", c.delete("/api/installer/1.0.0"))

        conversation = keep(
            "POST /api/cortex/conversations",
            c.post("/api/cortex/conversations", json={"siteId": site, "title": "t"}, headers=idem("chat")),
        ).json()["data"]["conversationId"]
        keep("GET /api/cortex/conversations", c.get("/api/cortex/conversations", params={"siteId": site}))
        keep(
            "POST /api/cortex/conversations/{conversationId}",
            c.post(
                f"/api/cortex/conversations/{conversation}",
                json={"role": "user", "content": "hi"},
                headers=idem("chat-send"),
            ),
        )
        keep(
            "PATCH /api/cortex/conversations/{conversationId}",
            c.patch(f"/api/cortex/conversations/{conversation}", json={"title": "renamed"}),
        )
        keep(
            "DELETE /api/cortex/conversations/{conversationId}",
            c.delete(f"/api/cortex/conversations/{conversation}"),
        )
        keep("GET /api/account/api-keys", c.get("/api/account/api-keys"))
        account_key = keep("POST /api/account/api-keys", c.post("/api/account/api-keys", json={"name": "ci"}))
        keep(
            "DELETE /api/account/api-keys/{keyId}",
            c.delete(f"/api/account/api-keys/{account_key.json()['keyId']}"),
        )
        keep("GET /api/roosts/{roostId} (404)", c.get("/api/roosts/absent-roost", params={"siteId": site}))
        with httpx.Client(base_url=server.url) as anonymous:
            keep("GET /api/roosts (401 no credential)", anonymous.get("/api/roosts", params={"siteId": site}))
    with httpx.Client(base_url=server.url, headers=server.headers(server.id_token)) as session:
        created_key = keep(
            "POST /api/keys",
            session.post(
                "/api/keys",
                json={
                    "name": "n",
                    "scopes": [{"resource": "roost", "id": "*", "permissions": ["read"]}],
                    "ttlDays": 90,
                    "environment": "live",
                },
            ),
        )
        keep("GET /api/keys", session.get("/api/keys"))
        rotated = keep(
            "POST /api/keys/{keyId}/rotate",
            session.post(f"/api/keys/{created_key.json()['keyId']}/rotate", json={"ttlDays": 90}),
        )
        keep("DELETE /api/keys/{keyId}", session.delete(f"/api/keys/{rotated.json()['keyId']}"))
    return exchanges


@pytest.fixture(scope="module")
def openapi() -> OpenAPI:
    # The spec lives in ../shared beside the checkout (CI lays it there too): a missing document
    # must fail the conformance test, not quietly skip it.
    if not SPEC.is_file():
        pytest.fail(f"OpenAPI document not found at {SPEC} (set ROOST_OPENAPI_SPEC)")
    return _load_spec()


@pytest.fixture(scope="module")
def exchanges() -> Iterator[dict[str, Exchange]]:
    server = start_server()
    try:
        yield _scenario(server)
    finally:
        server.stop()


def test_every_case_is_listed(exchanges: dict[str, Exchange]) -> None:
    assert sorted(exchanges) == sorted(CASES)
    assert set(STALE) <= set(CASES)
    assert set(STALE_REQUEST) <= set(CASES)


def _errors(openapi: OpenAPI, case: str, response: httpx.Response, *, check_request: bool) -> list[str]:
    request = _Request(response.request)
    problems: list[str] = []
    if check_request:
        for error in openapi.iter_request_errors(request):
            problems.extend(f"request {m}" for m in _messages(error))
    for error in openapi.iter_response_errors(request, _Response(response)):
        problems.extend(f"response {m}" for m in _messages(error))
    return problems


def test_stale_entries_are_still_stale(openapi: OpenAPI, exchanges: dict[str, Exchange]) -> None:
    """A skip that no longer hides a mismatch must be removed from the lists."""
    for case in STALE:
        assert _errors(openapi, case, exchanges[case].response, check_request=True), f"{case} now validates"
    for case in STALE_REQUEST:
        request = _Request(exchanges[case].response.request)
        assert list(openapi.iter_request_errors(request)), f"{case}: the request now validates"


@pytest.mark.parametrize("case", CASES)
def test_response_matches_openapi(case: str, openapi: OpenAPI, exchanges: dict[str, Exchange]) -> None:
    if case in STALE:
        pytest.skip(f"known stale OpenAPI part: {STALE[case]}")
    response = exchanges[case].response
    problems = _errors(openapi, case, response, check_request=case not in STALE_REQUEST)
    assert not problems, f"{case} -> {response.status_code}:\n" + "\n".join(problems)
