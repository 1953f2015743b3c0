"""The README's library quickstart, run as written with OWLETTE_TOKEN and OWLETTE_API_URL set."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from roost.testing import start_server

README = Path(__file__).resolve().parents[2] / "README.md"


def quickstart_source() -> str:
    text = README.read_text(encoding="utf-8")
    section = text[text.index("## Library quickstart") :]
    match = re.search(r"^```python\n(.*?)^```", section, re.MULTILINE | re.DOTALL)
    assert match is not None, "README has no python block under 'Library quickstart'"
    return match.group(1)


def test_quickstart_runs_as_written(tmp_path: Path) -> None:
    (tmp_path / "dist" / "media").mkdir(parents=True)
    (tmp_path / "dist" / "media" / "intro.mov").write_bytes(os.urandom(200_000))
    (tmp_path / "dist" / "project.toe").write_bytes(b"toe")
    script = tmp_path / "quickstart.py"
    script.write_text(quickstart_source(), encoding="utf-8")
    with start_server() as server:
        env = {k: v for k, v in os.environ.items() if not k.startswith("OWLETTE_")}
        env.update(OWLETTE_TOKEN=server.token, OWLETTE_API_URL=server.url)
        done = subprocess.run(
            [sys.executable, str(script)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
        )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("published v1 "), done.stdout
    assert done.stdout.rstrip().endswith("2 chunks uploaded")
