"""The request pipeline shared by every API route: context, auth gates, idempotency, paging."""

from __future__ import annotations

import asyncio
import logging
import re
import uuid
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from ._emulator import AuthError, Emulator, Principal
from ._jsonutil import JsonError, loads, now_ms, sha256_hex
from ._problems import (
    ApiError,
    forbidden,
    json_response,
    not_found,
    problem,
    scope_insufficient,
    unauthorized,
    validation,
)

__all__ = [
    "RESOURCE_ID_RE",
    "SHA256_RE",
    "SITE_ID_RE",
    "SUPPORTED_VERSIONS",
    "Ctx",
    "Handler",
    "RouteTable",
    "all_sha256",
    "api_route",
    "paginate",
    "with_pagination",
]

logger = logging.getLogger("roost.testing")


def all_sha256(values: list[Any]) -> bool:
    """True when every item is a string ``SHA256_RE`` accepts, tested with one regex over the
    joined list (20,000 hashes: ~3 ms against ~20 ms one by one). ``False`` means "not sure":
    the caller checks item by item, which also names the bad ones."""
    if not values:
        return True
    try:
        joined = "\n".join(values)
    except TypeError:
        return False
    # the length pins every item to 64 characters, so no item can hide a newline
    return len(joined) == 65 * len(values) - 1 and _HASH_LINES.fullmatch(joined) is not None


SITE_ID_RE = re.compile(r"^[A-Za-z0-9_-]{1,128}$")
RESOURCE_ID_RE = re.compile(r"^[A-Za-z0-9_-]{8,64}$")
SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
_HASH_LINES = re.compile(r"(?:[0-9a-f]{64}\n)*[0-9a-f]{64}")
CURRENT_VERSION = "2026-04-22"
SUPPORTED_VERSIONS = (CURRENT_VERSION,)
IDEMPOTENCY_TTL_MS = 24 * 3600 * 1000
_STREAM_TYPES = ("text/event-stream", "application/x-ndjson")


class Ctx:
    """One API request as the handlers see it."""

    def __init__(self, request: Request, emu: Emulator) -> None:
        self.request = request
        self.emu = emu
        self.request_id = str(uuid.uuid4())
        self.principal: Principal | None = None
        self.version_missing = False
        self._body: bytes | None = None
        # the float literals of the parsed JSON body (none: canonical_json(floats=False) holds)
        self.float_literals: list[str] = []
        self.idem_entry: tuple[str, str] | None = None
        self.extra_headers: dict[str, str] = {}

    # -- request data ----------------------------------------------------------------

    @property
    def path(self) -> str:
        return self.request.url.path

    @property
    def method(self) -> str:
        return self.request.method.upper()

    def param(self, name: str) -> str:
        return str(self.request.path_params[name])

    def query(self, name: str) -> str | None:
        return self.request.query_params.get(name)

    def query_all(self, name: str) -> list[str]:
        return self.request.query_params.getlist(name)

    def header(self, name: str) -> str | None:
        return self.request.headers.get(name)

    async def body(self) -> bytes:
        """The request body, refused with 413 once it passes the limit (a chunked or lying
        body is counted as it streams, so it never sits in memory whole)."""
        if self._body is None:
            limit = self.emu.options.max_json_body_bytes
            parts: list[bytes] = []
            received = 0
            async for part in self.request.stream():
                received += len(part)
                if received > limit:
                    raise body_too_large(limit)
                parts.append(part)
            self._body = b"".join(parts)
        return self._body

    def check_declared_length(self) -> None:
        """Refuse a body whose ``Content-Length`` already says it is over the limit."""
        declared = self.header("content-length")
        if declared is None:
            return
        limit = self.emu.options.max_json_body_bytes
        if not declared.isdigit() or len(declared) > 18:
            if declared.isdigit():
                raise body_too_large(limit)
            raise validation("Content-Length is malformed", {"header.Content-Length": ["must be digits"]})
        if int(declared) > limit:
            raise body_too_large(limit)

    async def json_strict(self) -> Any:
        """``parseJsonBody``: an empty or invalid body is a 400."""
        raw = await self.body()
        if not raw.strip():
            raise validation("request body is not valid json")
        try:
            return loads(raw, floats=self.float_literals)
        except JsonError:
            raise validation("request body is not valid json") from None

    async def json_lenient(self) -> Any:
        """``readAndParseJsonBody``: an empty body is ``{}``, invalid JSON a 400."""
        raw = await self.body()
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise validation("could not read request body") from None
        if not text.strip():
            return {}
        try:
            return loads(text, floats=self.float_literals)
        except JsonError:
            raise validation("request body is not valid json") from None

    # -- ids -------------------------------------------------------------------------

    @staticmethod
    def site_id_from_body(body: Any) -> str:
        value = body.get("siteId") if isinstance(body, dict) else None
        if value is None or value == "":
            raise validation("field `siteId` is required", {"body.siteId": ["required"]})
        if not isinstance(value, str) or not SITE_ID_RE.match(value):
            raise validation(
                "siteId must be 1-128 chars: letters, digits, underscore, hyphen",
                {"body.siteId": ["invalid format"]},
            )
        return value

    def site_id_from_query(self, *, detail: str | None = None) -> str:
        value = self.query("siteId")
        if not value:
            raise validation(detail or "query param `siteId` is required", {"query.siteId": ["required"]})
        if not SITE_ID_RE.match(value):
            raise validation(
                "siteId must be 1-128 chars: letters, digits, underscore, hyphen",
                {"query.siteId": ["invalid format"]},
            )
        return value

    @staticmethod
    def site_id_from_path(value: str) -> str:
        if not SITE_ID_RE.match(value):
            raise validation(
                "siteId must be 1-128 chars: letters, digits, underscore, hyphen",
                {"path.siteId": ["invalid format"]},
            )
        return value

    @staticmethod
    def resource_id(value: Any, field: str = "roostId", where: str = "path") -> str:
        if not isinstance(value, str) or not RESOURCE_ID_RE.match(value):
            raise validation(
                f"{field} must be 8-64 chars: letters, digits, underscore, hyphen",
                {f"{where}.{field}": ["invalid format"]},
            )
        return value

    # -- auth ------------------------------------------------------------------------

    def check_roost_version(self) -> None:
        value = self.header("roost-version")
        if value is None or not value.strip():
            self.version_missing = True
            return
        sent = value.strip()
        if sent not in SUPPORTED_VERSIONS:
            raise problem(
                400,
                "validation-failed",
                "unsupported version",
                f"roost-version '{sent}' is not supported; supported: {', '.join(SUPPORTED_VERSIONS)}",
                code="unsupported_version",
                sent=sent,
                supported=list(SUPPORTED_VERSIONS),
            )

    def _resolve(self) -> Principal:
        return self.emu.resolve(
            api_key_query=self.query("api_key"),
            x_api_key=self.header("x-api-key"),
            authorization=self.header("authorization"),
        )

    def authenticate(self, *, style: str = "shared") -> Principal:
        """Resolve the credential. ``style``: ``shared`` (fixed detail), ``passthrough``, ``plain``."""
        try:
            principal = self._resolve()
        except AuthError as failure:
            if failure.kind == "expired" and style != "plain":
                if style == "shared":
                    raise problem(
                        401,
                        "token-expired",
                        "token expired",
                        "the api key has expired; rotate or create a new key",
                        expiredAt=failure.expired_at,
                    ) from None
                raise problem(
                    401, "token-expired", "token expired", failure.message, expiredAt=failure.expired_at
                ) from None
            if style == "passthrough":
                raise unauthorized(failure.message) from None
            raise unauthorized() from None
        self.principal = principal
        return principal

    def _site_access(self, principal: Principal, site_id: str, *, inactive_forbidden: bool) -> dict[str, Any]:
        site = self.emu.site(site_id)
        if principal.is_deleted:
            if inactive_forbidden:
                raise forbidden("user is deleted or inactive")
            raise not_found("site not found or no access")
        if site is None or not self.emu.has_site_access(principal, site):
            raise not_found("site not found or no access")
        return site

    def _distribution_capability(self, principal: Principal, site: dict[str, Any]) -> None:
        if site.get("owner") == principal.uid:
            return
        if not principal.has_capability(site, "DISTRIBUTION_MANAGE"):
            raise forbidden("capability not granted")

    def auth_site(self, site_id: str, permission: str, *, capability: bool = False) -> Principal:
        """``requireSiteAuthAndScope`` (plus DISTRIBUTION_MANAGE when ``capability``)."""
        self.check_roost_version()
        principal = self.authenticate()
        site = self._site_access(principal, site_id, inactive_forbidden=False)
        if not principal.has_scope("site", site_id, permission):
            raise scope_insufficient("site", site_id, permission)
        if capability:
            self._distribution_capability(principal, site)
        return principal

    def auth_roost(self, site_id: str, roost_id: str, permission: str) -> Principal:
        """``requireRoostAuthAndScope``."""
        self.check_roost_version()
        principal = self.authenticate()
        site = self._site_access(principal, site_id, inactive_forbidden=False)
        if permission != "read":
            self._distribution_capability(principal, site)
        if not principal.has_scope("roost", roost_id, permission):
            raise scope_insufficient("roost", roost_id, permission)
        return principal

    def auth_site_handler(
        self, site_id: str, resource: str, resource_id: str, permission: str, capability: str | None
    ) -> tuple[Principal, dict[str, Any]]:
        """``authorizedSiteHandler``: passthrough auth detail, no owner bypass, capability gate."""
        principal = self.authenticate(style="passthrough")
        site = self._site_access(principal, site_id, inactive_forbidden=True)
        if not principal.has_scope(resource, resource_id, permission):
            raise scope_insufficient(resource, resource_id, permission)
        if capability is not None and not principal.has_capability(site, capability):
            raise forbidden("capability not granted")
        return principal, site

    def auth_platform(self, resource: str, permission: str) -> Principal:
        """``requirePlatformAuthAndScope``: superadmin role, then ``<resource>:*:<perm>``."""
        principal = self.authenticate(style="passthrough")
        if principal.is_deleted:
            raise forbidden("user is deleted or inactive")
        if not principal.is_superadmin:
            raise forbidden("superadmin access required")
        if not principal.has_scope(resource, "*", permission):
            raise scope_insufficient(resource, "*", permission)
        return principal

    def kill_switch(self, site_id: str) -> None:
        site = self.emu.site(site_id)
        if site is not None and site.get("roostEnabled") is False:
            raise problem(
                503,
                "service-unavailable",
                "roost disabled",
                f"roost is currently disabled for site {site_id}. contact your admin or check the site settings.",
                instance=f"/sites/{site_id}",
            )

    # -- idempotency -----------------------------------------------------------------

    async def idempotency(self, *, required: bool = False) -> Response | None:
        """Replay a cached response, reject a mismatch, or remember to cache this one."""
        raw_key = self.header("idempotency-key")
        key = raw_key.strip() if raw_key else ""
        if not key:
            if required:
                raise problem(
                    400,
                    "validation-failed",
                    "idempotency key required",
                    "Idempotency-Key is required for this mutation",
                    code="idempotency_key_required",
                    param="Idempotency-Key",
                    errors={"Idempotency-Key": ["required"]},
                )
            return None
        if len(key) > 255:
            raise problem(
                400,
                "validation-failed",
                "idempotency key too long",
                "Idempotency-Key must be ≤ 255 chars",
                code="idempotency_key_invalid",
            )
        principal = self.principal
        uid = principal.uid if principal else "anonymous"
        environment = principal.environment if principal else "unknown"
        query = self.request.url.query
        search = f"?{query}" if query else ""
        cache_id = sha256_hex(f"{uid}|{environment}|{key}|{self.method}|{self.path}|{search}")
        body_hash = sha256_hex(await self.body())
        entry = self.emu.store.get("idem", "", cache_id)
        if entry is not None and int(entry.get("expiresAt", 0)) > now_ms():
            if entry.get("bodyHash") == body_hash:
                headers = {str(k): str(v) for k, v in (entry.get("headers") or {}).items()}
                headers["Idempotent-Replayed"] = "true"
                response = Response(
                    str(entry.get("body", "")).encode("utf-8"),
                    status_code=int(entry["status"]),
                    headers=headers,
                )
                return response
            raise problem(
                422,
                "validation-failed",
                "idempotency key mismatch",
                f"Idempotency-Key '{key}' was previously used with a different request body; "
                "reuse requires the identical body",
                code="idempotency_key_mismatch",
            )
        self.idem_entry = (cache_id, body_hash)
        return None

    def save_idempotent(self, response: Response) -> None:
        if self.idem_entry is None or response.status_code >= 400:
            return
        if isinstance(response, StreamingResponse):
            return
        content_type = response.headers.get("content-type", "")
        if content_type.startswith(_STREAM_TYPES):
            return
        cache_id, body_hash = self.idem_entry
        headers = {k: v for k, v in response.headers.items() if k.lower() != "content-length"}
        self.emu.store.put(
            "idem",
            "",
            cache_id,
            {
                "bodyHash": body_hash,
                "status": response.status_code,
                "headers": headers,
                "body": bytes(response.body).decode("utf-8"),
                "expiresAt": now_ms() + IDEMPOTENCY_TTL_MS,
            },
        )

    # -- paging ----------------------------------------------------------------------

    def page_size(self, default: int, maximum: int) -> int:
        params = self.request.query_params
        if "page_size" in params:
            name, raw = "page_size", params["page_size"]
        elif "limit" in params:
            name, raw = "limit", params["limit"]
        else:
            return default
        # the length check comes first: int() of a 4,300-digit string raises instead of answering
        if not re.fullmatch(r"[0-9]{1,9}", raw or "") or not 1 <= int(raw) <= maximum:
            raise validation(
                f"{name} must be a positive integer",
                {f"query.{name}": [f"must be a positive integer <= {maximum}"]},
            )
        return int(raw)

    def page_token(self) -> str | None:
        params = self.request.query_params
        if "page_token" in params:
            return params["page_token"] or None
        return params.get("cursor") or None


def paginate(
    rows: Sequence[tuple[str, Any]],
    token: str | None,
    size: int,
    include: Callable[[Any], bool] | None = None,
) -> tuple[list[Any], str]:
    """One page of ``rows`` (ordered ``(id, doc)``) after the row named ``token``.

    An unknown token restarts from the top. The next token is the id of the last row on the page,
    and only when another included row follows.
    """
    start = 0
    if token:
        for index, (row_id, _) in enumerate(rows):
            if row_id == token:
                start = index + 1
                break
    page: list[tuple[str, Any]] = []
    more = False
    for row_id, doc in rows[start:]:
        if include is not None and not include(doc):
            continue
        if len(page) == size:
            more = True
            break
        page.append((row_id, doc))
    next_token = page[-1][0] if more and page else ""
    return [doc for _, doc in page], next_token


def with_pagination(body: dict[str, Any], token: str, *, camel: bool = True) -> dict[str, Any]:
    body["next_page_token"] = token
    if camel:
        body["nextPageToken"] = token
    return body


Handler = Callable[[Ctx], Awaitable[Response]]
# A noun module's routes: ``(path, {method: handler})`` in match order.
RouteTable = list[tuple[str, dict[str, Handler]]]


def api_route(emu: Emulator, path: str, methods: dict[str, Handler]) -> Route:
    """A Starlette route whose methods run through the API pipeline (faults, errors, caching)."""

    async def endpoint(request: Request) -> Response:
        handler = methods.get(request.method.upper())
        if handler is None:
            return Response(b"", status_code=405, headers={"x-security-version": "2"})
        ctx = Ctx(request, emu)
        emu.api_calls += 1
        faults = emu.faults
        try:
            if faults.api_latency_ms > 0:
                await asyncio.sleep(faults.api_latency_ms / 1000.0)
            if emu.api_dice.roll(faults.api_429):
                raise problem(
                    429,
                    "rate-limited",
                    "rate limited",
                    f"try again in {faults.retry_after_s} seconds",
                    headers={"Retry-After": str(faults.retry_after_s)},
                    retryAfter=faults.retry_after_s,
                )
            if emu.api_dice.roll(faults.api_5xx):
                status = emu.api_dice.choice((500, 503))
                if status == 500:
                    raise problem(
                        500,
                        "internal-error",
                        "internal error",
                        "an internal error occurred. quote the requestId when contacting support.",
                        instance="fault-injection",
                    )
                raise problem(
                    503, "service-unavailable", "service unavailable", "injected fault: service unavailable"
                )
            ctx.check_declared_length()
            response = await handler(ctx)
        except ApiError as error:
            response = error.render(ctx.request_id)
        except Exception as exc:
            logger.exception("emulator route %s %s failed", request.method, request.url.path)
            response = problem(
                500,
                "internal-error",
                "internal error",
                "an internal error occurred. quote the requestId when contacting support.",
                instance=f"{request.method} {request.url.path}: {type(exc).__name__}",
            ).render(ctx.request_id)
        response.headers["x-security-version"] = "2"
        if ctx.version_missing:
            response.headers["X-Roost-Version-Missing"] = "true"
        for name, value in ctx.extra_headers.items():
            response.headers[name] = value
        if "idempotent-replayed" not in response.headers:
            ctx.save_idempotent(response)
        return response

    return Route(path, endpoint, methods=["GET", "POST", "PUT", "PATCH", "DELETE"])


def body_too_large(limit: int) -> ApiError:
    return problem(
        413,
        "payload-too-large",
        "payload too large",
        f"request body exceeds {limit} bytes",
        errors={"body": [f"must be at most {limit} bytes"]},
        limit=limit,
    )


def ok(body: Any, status: int = 200) -> Response:
    return json_response(body, status)
