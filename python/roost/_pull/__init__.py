"""The pull engine: rebuild a version on disk, verified, moving only what differs (``client.roosts.pull``)."""
