"""Transport below the resources: the credential-free storage client and the one retry policy.

``roost.client.RoostClient`` (API requests) sits beside this package; nothing here knows a
resource or the push. See ARCHITECTURE.md for the layers.
"""

from __future__ import annotations

from .http11 import LeanHttp11Transport
from .pacing import LatencyFanOut, ThroughputWindow, TokenBucket
from .retry import RetryPolicy, is_retryable_status, parse_http_date, parse_retry_after_header
from .storage import DEFAULT_STALL_TIMEOUT_S, StorageClient, StorageSettings, check_transfer_options

__all__ = [
    "DEFAULT_STALL_TIMEOUT_S",
    "LatencyFanOut",
    "LeanHttp11Transport",
    "RetryPolicy",
    "StorageClient",
    "StorageSettings",
    "ThroughputWindow",
    "TokenBucket",
    "check_transfer_options",
    "is_retryable_status",
    "parse_http_date",
    "parse_retry_after_header",
]
