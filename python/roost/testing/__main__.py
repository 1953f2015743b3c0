"""``python -m roost.testing``: run the local Owlette API emulator until interrupted."""

from __future__ import annotations

import sys

from ._cli import serve_forever

if __name__ == "__main__":
    sys.exit(serve_forever())
