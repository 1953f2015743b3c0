"""One module per API noun. Each talks to the wire only through :class:`roost.client.RoostClient`.

The package re-exports every noun and its public types (``from roost.resources import Roosts,
PushOptions``), as the reference SDK's code expects. Each module's ``__all__`` is the one list of
what it exports; the star imports below follow it, so a name added there is re-exported here.
"""

from . import (
    account,
    chat,
    chunks,
    deployments,
    installer,
    installer_deployments,
    keys,
    machines,
    members,
    processes,
    quotas,
    roosts,
    sites,
    users,
    versions,
    webhooks,
)
from .account import *  # noqa: F403
from .chat import *  # noqa: F403
from .chunks import *  # noqa: F403
from .deployments import *  # noqa: F403
from .installer import *  # noqa: F403
from .installer_deployments import *  # noqa: F403
from .keys import *  # noqa: F403
from .machines import *  # noqa: F403
from .members import *  # noqa: F403
from .processes import *  # noqa: F403
from .quotas import *  # noqa: F403
from .roosts import *  # noqa: F403
from .sites import *  # noqa: F403
from .users import *  # noqa: F403
from .versions import *  # noqa: F403
from .webhooks import *  # noqa: F403

__all__: list[str] = []
__all__ += account.__all__
__all__ += chat.__all__
__all__ += chunks.__all__
__all__ += deployments.__all__
__all__ += installer.__all__
__all__ += installer_deployments.__all__
__all__ += keys.__all__
__all__ += machines.__all__
__all__ += members.__all__
__all__ += processes.__all__
__all__ += quotas.__all__
__all__ += roosts.__all__
__all__ += sites.__all__
__all__ += users.__all__
__all__ += versions.__all__
__all__ += webhooks.__all__
