"""The ``roost`` command line, run in a subprocess against the local emulator."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import anyio
import pytest

from roost import NotFoundError, Roost, sign_body
from roost.testing import serve

from .conftest import ROOST_CMD, cli_env

pytestmark = pytest.mark.anyio

ROOST_ID = "rst_cli_tests"


async def run_cli(
    *args: str, env: dict[str, str], stdin: bytes | None = None
) -> subprocess.CompletedProcess[bytes]:
    return await anyio.run_process([*ROOST_CMD, *args], env=env, check=False, input=stdin)


async def test_push_json_matches_the_api(server: Any, small_build: Path) -> None:
    done = await run_cli(
        "push",
        str(small_build),
        ROOST_ID,
        "--create",
        "--json",
        "--description",
        "from cli",
        env=cli_env(server),
    )
    assert done.returncode == 0, done.stderr.decode()
    result = json.loads(done.stdout)
    assert done.stderr == b""  # --json: no progress lines, one document on stdout
    async with Roost(token=server.token, api_url=server.url) as client:
        current = await client.versions.get(ROOST_ID, "current", site_id=server.site_id)
    assert result["version_id"] == current["versionId"]
    assert result["version_number"] == current["versionNumber"] == 1
    assert result["stats"]["file_count"] == 32
    assert result["stats"]["empty_files"] == 1
    assert result["stats"]["uploaded_chunks"] == result["stats"]["unique_chunks"] == 32


async def test_plain_output_when_not_a_terminal(server: Any, small_build: Path) -> None:
    done = await run_cli("push", str(small_build), ROOST_ID, "--create", env=cli_env(server))
    assert done.returncode == 0, done.stderr.decode()
    lines = done.stderr.decode().splitlines()
    assert lines[0].startswith("roost: found 32 files (")
    assert any(line.startswith("roost: hashing 32/32 files") for line in lines)
    assert any(line == "roost: checked 32 chunks: 32 to upload, 0 already stored" for line in lines)
    assert lines[-1] == "roost: uploaded 32/32 chunks" or lines[-1].startswith(
        "roost: uploaded 32/32 chunks ("
    )
    assert all(line.startswith("roost: ") for line in lines)
    assert done.stdout.decode().startswith("published v1 ")
    again = await run_cli("push", str(small_build), ROOST_ID, env=cli_env(server))
    assert "roost: checked 32 chunks: 0 to upload, 32 already stored" in again.stderr.decode()
    assert again.stdout.decode().startswith("published v2 ")


async def test_exit_codes(server: Any, small_build: Path, tmp_path: Path) -> None:
    env = cli_env(server)
    ok = await run_cli("whoami", env=env)
    assert ok.returncode == 0, ok.stderr
    assert b"primary site" in ok.stdout

    usage = await run_cli("push", env=env)
    assert usage.returncode == 2
    no_token = await run_cli("whoami", env={**env, "OWLETTE_TOKEN": ""})
    assert no_token.returncode == 2
    assert b"OWLETTE_TOKEN" in no_token.stderr

    api = await run_cli("roosts", "get", "rst_does_not_exist", env=env)
    assert api.returncode == 3
    assert b"code not_found" in api.stderr
    assert b"request id " in api.stderr

    bad_token = await run_cli("whoami", env={**env, "OWLETTE_TOKEN": "owk_test_" + "x" * 43})
    assert bad_token.returncode == 3
    assert b"unauthorized" in bad_token.stderr

    missing = tmp_path / "nope"
    local = await run_cli("push", str(missing), ROOST_ID, env=env)
    assert local.returncode == 4
    assert str(missing).encode() in local.stderr
    a_file = small_build / "empty.marker"
    not_dir = await run_cli("push", str(a_file), ROOST_ID, env=env)
    assert not_dir.returncode == 4
    assert str(a_file).encode() in not_dir.stderr


async def test_sigint_during_upload_publishes_nothing(small_build: Path) -> None:
    async with serve(faults="storage_latency_ms=400,seed=1") as slow:
        process = await anyio.open_process(
            [*ROOST_CMD, "push", str(small_build), ROOST_ID, "--create"],
            env=cli_env(slow),
            stderr=subprocess.PIPE,
        )
        assert process.stderr is not None
        seen = b""
        with anyio.fail_after(60):
            async for data in process.stderr:
                seen += data
                if b"to upload" in seen:
                    break
        process.send_signal(signal.SIGINT)
        with anyio.fail_after(30):
            rest = b"".join([data async for data in process.stderr])
            code = await process.wait()
        assert code == 130, (seen + rest).decode()
        assert b"nothing was published" in rest
        async with Roost(token=slow.token, api_url=slow.url) as client:
            # Publishing would have created the roost implicitly: it does not exist at all.
            with pytest.raises(NotFoundError):
                await client.roosts.get(ROOST_ID, site_id=slow.site_id)


async def test_versions_diff_rollback_and_deploy_dry_run(server: Any, small_build: Path) -> None:
    env = cli_env(server)
    assert (
        await run_cli("push", str(small_build), ROOST_ID, "--create", "--target", "machine-a", env=env)
    ).returncode == 0
    (small_build / "components" / "g0" / "c0.tox").write_bytes(b"changed")
    assert (await run_cli("push", str(small_build), ROOST_ID, env=env)).returncode == 0

    listed = await run_cli("versions", "list", ROOST_ID, "--json", env=env)
    assert [v["version_number"] for v in json.loads(listed.stdout)] == [2, 1]
    diff = await run_cli("versions", "diff", ROOST_ID, "2", "--against", "1", env=env)
    assert diff.returncode == 0, diff.stderr
    assert b"1 changed" in diff.stdout
    assert b"~ components/g0/c0.tox" in diff.stdout
    files = await run_cli("versions", "files", ROOST_ID, "1", "--prefix", "media/", "--json", env=env)
    assert [f["path"] for f in json.loads(files.stdout)] == ["media/clip.bin"]

    rolled = await run_cli("rollback", ROOST_ID, "--to", "1", "--json", env=env)
    assert rolled.returncode == 0, rolled.stderr
    async with Roost(token=server.token, api_url=server.url) as client:
        detail = await client.roosts.get(ROOST_ID, site_id=server.site_id)
    assert detail.current_version is not None
    assert detail.current_version.version_number == 1
    assert json.loads(rolled.stdout)["current_version_id"] == detail.current_version_id

    deploy = await run_cli("deploy", ROOST_ID, "--dry-run", "--json", env=env)
    assert deploy.returncode == 0, deploy.stderr
    assert json.loads(deploy.stdout)["dry_run"] is True


async def test_webhook_verify(tmp_path: Path) -> None:
    body = b'{"event":"version.published"}'
    header = sign_body(body, "whsec_cli")
    env = {"OWLETTE_WEBHOOK_SECRET": "whsec_cli", "PATH": "/usr/bin:/bin"}
    good = await run_cli("webhook", "verify", "--header", header, env=env, stdin=body)
    assert good.returncode == 0
    assert good.stdout.strip() == b"valid"
    bad = await run_cli("webhook", "verify", "--header", header, env=env, stdin=body + b"x")
    assert bad.returncode == 1
    assert bad.stdout.strip() == b"invalid: bad_signature"
    body_file = tmp_path / "body.json"
    body_file.write_bytes(body)
    malformed = await run_cli("webhook", "verify", "--header", "nonsense", "--body", str(body_file), env=env)
    assert malformed.stdout.strip() == b"invalid: malformed_header"


async def test_without_the_cli_extra_it_says_how_to_install() -> None:
    code = "import sys; sys.modules['rich'] = None; from roost.cli import main; sys.exit(main(['whoami']))"
    done = await anyio.run_process([sys.executable, "-c", code], check=False)
    assert done.returncode == 2
    assert b"pip install 'owlette-sdk[cli]'" in done.stderr


async def test_demo_runs_the_whole_flow(tmp_path: Path) -> None:
    done = await anyio.run_process([*ROOST_CMD, "demo"], env=cli_env_plain(), check=False)
    out = done.stdout.decode()
    assert done.returncode == 0, out + done.stderr.decode()
    assert "published v1" in out
    assert "published v3" in out
    second_push = out.split("pushing the same build again")[1].split("==")[0]
    assert " 0 of " in second_push
    third_push = out.split("only its changed chunk uploads")[1].split("==")[0]
    assert " 1 of " in third_push
    assert "~ media/loop_a.mp4" in out
    assert "current version is v1" in out
    assert "pulled v1: 244 files" in out
    assert "matches v1 byte for byte" in out
    assert "demo finished" in out


def cli_env_plain() -> dict[str, str]:
    import os

    return {k: v for k, v in os.environ.items() if not k.startswith("OWLETTE_")} | {"PYTHONUNBUFFERED": "1"}
