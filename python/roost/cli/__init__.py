"""The ``roost`` command line (``pip install 'owlette-sdk[cli]'``)."""

from ._app import main

__all__ = ["main"]
