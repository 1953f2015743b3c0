"""owlette-sdk: the async Python SDK for the Owlette public API (import name ``roost``)."""

from ._errors import (
    AuthenticationError,
    BadRequestError,
    ChunkSourceChangedError,
    ChunkUploadError,
    ConflictError,
    InternalServerError,
    NotFoundError,
    PermissionDeniedError,
    PreconditionFailedError,
    RateLimitError,
    RoostApiError,
    UnprocessableEntityError,
)
from ._roost import Roost
from ._version import SDK_VERSION, __version__
from ._wire import MalformedResponseError
from .client import (
    DEFAULT_API_URL,
    DEFAULT_ROOST_VERSION,
    ApiResponse,
    Environment,
    HttpMethod,
    RetryPolicy,
    RoostClient,
)
from .resources.account import (
    Account,
    AccountApiKeys,
    AccountKeyContext,
    ApiKeyRecord,
    ApiKeyScope,
    ApiVersionResponse,
    WhoamiResponse,
)
from .resources.sites import Site, Sites
from .signature import (
    DEFAULT_REPLAY_TOLERANCE_SECONDS,
    VerifyReason,
    VerifySignatureResult,
    is_signature_valid,
    sign_body,
    verify_signature,
)

__all__ = [
    "DEFAULT_API_URL",
    "DEFAULT_REPLAY_TOLERANCE_SECONDS",
    "DEFAULT_ROOST_VERSION",
    "SDK_VERSION",
    "Account",
    "AccountApiKeys",
    "AccountKeyContext",
    "ApiKeyRecord",
    "ApiKeyScope",
    "ApiResponse",
    "ApiVersionResponse",
    "AuthenticationError",
    "BadRequestError",
    "ChunkSourceChangedError",
    "ChunkUploadError",
    "ConflictError",
    "Environment",
    "HttpMethod",
    "InternalServerError",
    "MalformedResponseError",
    "NotFoundError",
    "PermissionDeniedError",
    "PreconditionFailedError",
    "RateLimitError",
    "RetryPolicy",
    "Roost",
    "RoostApiError",
    "RoostClient",
    "Site",
    "Sites",
    "UnprocessableEntityError",
    "VerifyReason",
    "VerifySignatureResult",
    "WhoamiResponse",
    "__version__",
    "is_signature_valid",
    "sign_body",
    "verify_signature",
]
