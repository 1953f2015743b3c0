"""problem+json errors exactly as the real server's ``apiErrors.ts`` builds them."""

from __future__ import annotations

from typing import Any

from starlette.responses import Response

from ._jsonutil import dumps

__all__ = [
    "PROBLEM_BASE",
    "ApiError",
    "bad_request",
    "conflict",
    "forbidden",
    "json_response",
    "not_found",
    "problem",
    "scope_insufficient",
    "unauthorized",
    "validation",
]

PROBLEM_BASE = "https://owlette.app/problems/"
DOCS_BASE = "https://owlette.app/docs/api/errors#"

_DEFAULT_CODES = {
    "validation-failed": "validation_failed",
    "unauthorized": "unauthorized",
    "forbidden": "forbidden",
    "scope-insufficient": "scope_insufficient",
    "token-expired": "token_expired",
    "not-found": "not_found",
    "conflict": "conflict",
    "precondition-failed": "precondition_failed",
    "payload-too-large": "payload_too_large",
    "rate-limited": "rate_limited",
    "quota-exceeded": "quota_exceeded",
    "internal-error": "internal_error",
    "service-unavailable": "service_unavailable",
}


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(dumps(body), status_code=status, headers=headers, media_type="application/json")


class ApiError(Exception):
    """An error response. ``body`` lacks ``requestId`` until :meth:`render` adds it."""

    def __init__(
        self,
        status: int,
        body: dict[str, Any],
        headers: dict[str, str] | None = None,
        *,
        standard: bool = True,
        media_type: str = "application/problem+json; charset=utf-8",
    ) -> None:
        super().__init__(body.get("detail") or body.get("title"))
        self.status = status
        self.body = body
        self.headers = dict(headers or {})
        self.standard = standard
        self.media_type = media_type

    @property
    def code(self) -> str | None:
        code = self.body.get("code")
        return code if isinstance(code, str) else None

    def render(self, request_id: str) -> Response:
        body = dict(self.body)
        headers = dict(self.headers)
        if self.standard:
            body["requestId"] = request_id
            headers["X-Request-Id"] = request_id
        response = Response(dumps(body), status_code=self.status, headers=headers)
        response.headers["content-type"] = self.media_type
        return response


def problem(
    status: int,
    type_slug: str,
    title: str,
    detail: str | None = None,
    *,
    code: str | None = None,
    instance: str | None = None,
    errors: dict[str, list[str]] | None = None,
    headers: dict[str, str] | None = None,
    **extensions: Any,
) -> ApiError:
    body: dict[str, Any] = {"type": PROBLEM_BASE + type_slug, "title": title, "status": status}
    if detail is not None:
        body["detail"] = detail
    if instance is not None:
        body["instance"] = instance
    if errors is not None:
        body["errors"] = errors
    for key, value in extensions.items():
        body[key] = value
    resolved = code or _DEFAULT_CODES.get(type_slug, "internal_error")
    body["code"] = resolved
    body["docsUrl"] = DOCS_BASE + resolved
    return ApiError(status, body, headers)


def validation(
    detail: str,
    errors: dict[str, list[str]] | None = None,
    *,
    code: str | None = None,
    title: str = "validation failed",
    instance: str | None = None,
    **extensions: Any,
) -> ApiError:
    return problem(
        400,
        "validation-failed",
        title,
        detail,
        code=code,
        instance=instance,
        errors=errors,
        **extensions,
    )


bad_request = validation


def unauthorized(detail: str = "authentication required") -> ApiError:
    return problem(401, "unauthorized", "unauthorized", detail)


def forbidden(detail: str = "access denied", *, code: str | None = None) -> ApiError:
    return problem(403, "forbidden", "forbidden", detail, code=code)


def not_found(
    detail: str = "resource not found",
    *,
    title: str = "not found",
    code: str | None = None,
    instance: str | None = None,
) -> ApiError:
    return problem(404, "not-found", title, detail, code=code, instance=instance)


def conflict(detail: str, *, title: str = "conflict", code: str | None = None, **ext: Any) -> ApiError:
    return problem(409, "conflict", title, detail, code=code, **ext)


def scope_insufficient(resource: str, resource_id: str, permission: str) -> ApiError:
    return problem(
        403,
        "scope-insufficient",
        "insufficient scope",
        f"insufficient scope: requires {permission} on {resource}:{resource_id}",
        required={"resource": resource, "id": resource_id, "permission": permission},
    )


def local_problem(status: int, code: str, detail: str) -> ApiError:
    """The process routes' own envelope: no requestId, docsUrl or X-Request-Id."""
    body = {"type": "about:blank", "title": code, "status": status, "code": code, "detail": detail}
    return ApiError(status, body, standard=False, media_type="application/problem+json")
