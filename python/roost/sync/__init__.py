"""``roost.sync``: the blocking client, for scripts, shells and UIs that cannot ``await``.

``with roost.sync.Roost() as client:`` gives the resource tree of :class:`roost.Roost` with the
same names and signatures, blocking; ``client.roosts.start_push(...)`` and ``start_pull(...)``
return a handle at once for UIs that poll. Typed by ``__init__.pyi``.
"""

from ._client import BlockingResource, Roost, noun_classes
from ._handles import OperationHandle, PullHandle, PushHandle

_NOUNS = noun_classes()
globals().update(_NOUNS)

__all__ = ["BlockingResource", "OperationHandle", "PullHandle", "PushHandle", "Roost", *_NOUNS]
