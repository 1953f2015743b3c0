"""The base every resource class shares: a handle on the :class:`RoostClient`."""

from __future__ import annotations

from ..client import RoostClient


class Resource:
    """One noun of the API. Resources talk to the wire only through ``self._http``."""

    __slots__ = ("_http",)

    def __init__(self, http: RoostClient) -> None:
        self._http = http
