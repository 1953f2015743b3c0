"""Native == fallback == an independent hashlib oracle, on a tree with every walk case.

Every test that takes the ``backend`` fixture runs twice: on the Rust core and on the
pure-Python fallback.
"""

from __future__ import annotations

import errno
import os
import pickle
import shutil
import stat
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest

from roost import ChunkSourceChangedError, chunker
from roost.chunker import ChunkedFileEntry, ChunkProgressEvent, DiscoverProgress, HashProgress

from ._tree import EXPECTED, IGNORE, build_tree, oracle

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="the tree uses FIFOs, sockets and symlinks")


def as_tuples(entries: list[ChunkedFileEntry]) -> list[tuple[str, int, list[tuple[str, int]]]]:
    return [(e.path, e.size, [(c.hash, c.size) for c in e.chunks]) for e in entries]


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    root, _ = build_tree(tmp_path_factory.mktemp("conformance"))
    fifo = root / "fifo"
    # If a backend ever opened the FIFO for reading it would block: this watchdog opens the
    # write end after a while so that the test fails instead of hanging.
    done = threading.Event()

    def watchdog() -> None:
        if not done.wait(120):
            fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
            os.close(fd)

    t = threading.Thread(target=watchdog, daemon=True)
    t.start()
    yield root
    done.set()


def test_tree_matches_the_oracle(backend: str, tree: Path) -> None:
    entries = chunker.scan_directory(tree, ignore=IGNORE)
    assert as_tuples(entries) == oracle(tree, EXPECTED)


def test_the_cases_are_present(tree: Path) -> None:
    """The oracle's expectations rest on these: check the tree really has them."""
    assert stat.S_ISFIFO(os.lstat(tree / "fifo").st_mode)
    assert stat.S_ISSOCK(os.lstat(tree / "sock").st_mode)
    sizes = {e: os.path.getsize(tree / e) for e in ("sizes/m1.bin", "sizes/exact.bin", "sizes/p1.bin")}
    assert sizes == {
        "sizes/m1.bin": 4 * 2**20 - 1,
        "sizes/exact.bin": 4 * 2**20,
        "sizes/p1.bin": 4 * 2**20 + 1,
    }
    assert os.path.getsize(tree / "sizes/big.bin") == 9 * 2**20 + 3
    assert not os.path.exists(tree / "links/broken")


def test_backends_agree_without_patterns(tree: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    results = {}
    for name in ("native", "python"):
        monkeypatch.setenv("ROOST_NATIVE", "1" if name == "native" else "0")
        assert chunker.backend() == name
        results[name] = chunker.scan_directory(tree)
    assert results["native"] == results["python"]
    paths = [e.path for e in results["native"]]
    assert paths == sorted(paths)
    # without the patterns the ignored files come back, the default ignores do not
    assert "x.tmp" in paths
    assert "renders/cache/sub/f.exr" in paths
    assert "links/tmp-link.tmp" in paths
    assert not any(p.startswith((".git/", "node_modules/")) or "/.git/" in p for p in paths)
    assert as_tuples(results["native"]) == oracle(tree, paths)


def test_zero_byte_files_are_listed(backend: str, tree: Path) -> None:
    entries = {e.path: e for e in chunker.scan_directory(tree, ignore=IGNORE)}
    assert entries["empty.txt"] == ChunkedFileEntry("empty.txt", 0, ())


def test_manifest_order_is_plain_string_order(backend: str, tmp_path: Path) -> None:
    for rel in ("B.txt", "a/b.txt", "a-b/x.txt", "a.txt"):
        (tmp_path / rel).parent.mkdir(exist_ok=True)
        (tmp_path / rel).write_bytes(b"x")
    paths = [e.path for e in chunker.scan_directory(tmp_path)]
    assert paths == ["B.txt", "a-b/x.txt", "a.txt", "a/b.txt"]


@pytest.mark.anyio
async def test_async_matches_sync_with_progress(backend: str, tree: Path) -> None:
    events: list[ChunkProgressEvent] = []
    entries = await chunker.chunk_directory(tree, ignore=IGNORE, on_progress=events.append)
    assert as_tuples(entries) == oracle(tree, EXPECTED)
    total = sum(e.size for e in entries)
    expected: list[ChunkProgressEvent] = [DiscoverProgress(len(entries), total)]
    done = 0
    for i, e in enumerate(entries):
        expected.append(HashProgress(e.path, i, len(entries), done, total))
        done += e.size
    expected.append(HashProgress("", len(entries), len(entries), total, total))
    assert events == expected


def test_symlink_cycle_to_root_terminates(backend: str, tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "f").write_bytes(b"f")
    os.symlink("..", tmp_path / "d" / "up")
    os.symlink(tmp_path, tmp_path / "d" / "abs-up")
    os.symlink("d", tmp_path / "alias")
    paths = [e.path for e in chunker.scan_directory(tmp_path)]
    assert paths == ["alias/f", "d/f"]


def test_root_given_through_a_symlink(backend: str, tmp_path: Path) -> None:
    (tmp_path / "real").mkdir()
    (tmp_path / "real" / "f").write_bytes(b"data")
    (tmp_path / "real" / "inside").symlink_to(tmp_path / "real" / "f")
    os.symlink(tmp_path / "real", tmp_path / "alias")
    paths = [e.path for e in chunker.scan_directory(tmp_path / "alias")]
    assert paths == ["f", "inside"]


# ---------------------------------------------------------------------------------------------
# errors


def test_non_utf8_name_is_a_clear_error(backend: str, tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    fd = os.open(os.fsencode(tmp_path / "sub") + b"/bad\xff\xfename.txt", os.O_CREAT | os.O_WRONLY)
    os.close(fd)
    with pytest.raises(ValueError, match="not valid UTF-8") as info:
        chunker.scan_directory(tmp_path)
    assert '"sub/bad\\xff\\xfename.txt"' in str(info.value)


def test_non_utf8_name_inside_an_ignored_directory_is_never_seen(backend: str, tmp_path: Path) -> None:
    (tmp_path / "skip").mkdir()
    fd = os.open(os.fsencode(tmp_path / "skip") + b"/bad\xff", os.O_CREAT | os.O_WRONLY)
    os.close(fd)
    (tmp_path / "ok").write_bytes(b"ok")
    assert [e.path for e in chunker.scan_directory(tmp_path, ignore=["skip"])] == ["ok"]


def test_missing_and_non_directory_roots(backend: str, tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError) as missing:
        chunker.scan_directory(tmp_path / "nope")
    assert missing.value.filename == os.path.realpath(tmp_path / "nope")
    (tmp_path / "file").write_bytes(b"x")
    with pytest.raises(NotADirectoryError) as not_dir:
        chunker.scan_directory(tmp_path / "file")
    assert not_dir.value.filename == os.path.realpath(tmp_path / "file")


def test_bad_patterns_raise_value_error(backend: str, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r'invalid ignore pattern "\[abc": unclosed character class'):
        chunker.scan_directory(tmp_path, ignore=["[abc"])
    with pytest.raises(TypeError):
        chunker.scan_directory(tmp_path, ignore="*.tmp")


def _error_fields(exc: BaseException) -> tuple[Any, ...]:
    if isinstance(exc, OSError):
        return (type(exc), exc.errno, exc.strerror, exc.filename)
    return (type(exc), str(exc))


@pytest.mark.anyio
async def test_file_removed_between_walk_and_hash(backend: str, real_tmp: Path) -> None:
    """A file that vanishes after the walk: FileNotFoundError naming its absolute path."""
    (real_tmp / "a.txt").write_bytes(b"a")
    victim = real_tmp / "sub" / "victim.bin"
    victim.parent.mkdir()
    victim.write_bytes(b"v" * 10_000)

    def on_progress(event: ChunkProgressEvent) -> None:
        if isinstance(event, DiscoverProgress):
            victim.unlink()

    with pytest.raises(FileNotFoundError) as info:
        await chunker.chunk_directory(real_tmp, on_progress=on_progress)
    assert info.value.filename == str(victim)
    assert info.value.errno == errno.ENOENT


@pytest.mark.anyio
async def test_file_truncated_between_walk_and_hash(backend: str, real_tmp: Path) -> None:
    victim = real_tmp / "big.bin"
    victim.write_bytes(os.urandom(5 * 2**20))

    def on_progress(event: ChunkProgressEvent) -> None:
        if isinstance(event, DiscoverProgress):
            with open(victim, "r+b") as f:
                f.truncate(2**20)

    with pytest.raises(ChunkSourceChangedError) as info:
        await chunker.chunk_directory(real_tmp, on_progress=on_progress)
    assert info.value.path == str(victim)


# Unreadable files and directories. The tests run as root, which reads everything, so the scan
# runs in a forked child that first drops to the "nobody" user; without root, in-process.


def _run_unprivileged(fn: Callable[[], object]) -> object:
    """``fn()``'s result or raised exception, computed without root privileges."""
    if os.geteuid() != 0:
        try:
            return fn()
        except Exception as e:
            return e
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        try:
            os.close(r)
            os.setgroups([])
            os.setgid(65534)
            os.setuid(65534)
            try:
                result: object = fn()
            except Exception as e:
                result = e
            with os.fdopen(w, "wb") as f:
                pickle.dump(result, f)
        finally:
            os._exit(0)
    os.close(w)
    with os.fdopen(r, "rb") as f:
        data = f.read()
    os.waitpid(pid, 0)
    assert data, "the unprivileged child reported nothing"
    return pickle.loads(data)


@pytest.fixture
def shared_tmp() -> Iterator[Path]:
    """A directory that the unprivileged child can enter (pytest's tmp_path is mode 0700)."""
    path = Path(tempfile.mkdtemp(prefix="roost-chunker-"))
    path.chmod(0o755)
    yield path
    for dirpath, dirnames, _ in os.walk(path):
        for d in dirnames:
            os.chmod(os.path.join(dirpath, d), 0o755)
    shutil.rmtree(path)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork to drop privileges")
@pytest.mark.filterwarnings("ignore:This process .* is multi-threaded")
def test_unreadable_file(backend: str, shared_tmp: Path) -> None:
    (shared_tmp / "ok.txt").write_bytes(b"ok")
    secret = shared_tmp / "secret.bin"
    secret.write_bytes(b"s" * 100)
    secret.chmod(0o000)
    os.chmod(shared_tmp / "ok.txt", 0o644)
    result = _run_unprivileged(lambda: chunker.scan_directory(shared_tmp))
    assert isinstance(result, PermissionError), result
    assert result.filename == os.path.realpath(secret)
    assert result.errno == errno.EACCES


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork to drop privileges")
@pytest.mark.filterwarnings("ignore:This process .* is multi-threaded")
def test_unreadable_directory(backend: str, shared_tmp: Path) -> None:
    locked = shared_tmp / "locked"
    locked.mkdir()
    (locked / "f").write_bytes(b"f")
    locked.chmod(0o000)
    result = _run_unprivileged(lambda: chunker.scan_directory(shared_tmp))
    assert isinstance(result, PermissionError), result
    assert result.filename == os.path.realpath(locked)


def test_errors_are_the_same_on_both_backends(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fd = os.open(os.fsencode(tmp_path) + b"/\xff", os.O_CREAT | os.O_WRONLY)
    os.close(fd)
    seen = []
    for name in ("native", "python"):
        monkeypatch.setenv("ROOST_NATIVE", "1" if name == "native" else "0")
        with pytest.raises(ValueError, match="UTF-8") as info:
            chunker.scan_directory(tmp_path)
        seen.append(_error_fields(info.value))
    assert seen[0] == seen[1]


async def _streamed(root: Path, **options: Any) -> Any:
    from roost.chunker._driver import StreamOutcome

    outcome = StreamOutcome()
    async for _ in chunker._stream_tree(root, outcome, **options):
        pass
    return outcome


@pytest.mark.anyio
@pytest.mark.parametrize("warm", [False, True])
async def test_a_native_scan_writes_the_entries_json_the_python_formatter_writes(
    backend: str, tree: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, warm: bool
) -> None:
    """The version file list a push publishes: the native core's text of a finished scan is
    byte for byte ``_model.entries_json`` of its entries (cold, and from the hash cache), here
    and on names that need escaping; the fallback writes none (the engine formats it)."""
    from roost.chunker._model import entries_json

    monkeypatch.setenv("ROOST_CACHE_DIR", str(tmp_path / "cache"))
    odd = tmp_path / "odd"
    (odd / 'q"uote\\back').mkdir(parents=True)
    names = [
        "new\nline",
        "tab\there",
        "ctl\x01\x1f\x7f",
        "é ü",
        "sep\u2028",
        "emoji-\U0001f989",
        "b\x08f\x0c",
    ]
    for i, name in enumerate(names):
        (odd / 'q"uote\\back' / name).write_bytes(os.urandom(i * 1000))
    (odd / "big.bin").write_bytes(os.urandom(chunker.CHUNK_SIZE_BYTES + 5))
    for root, options in ((tree, {"ignore": IGNORE}), (odd, {})):
        if warm:
            await _streamed(root, **options)
        outcome = await _streamed(root, **options)
        assert outcome.entries
        if backend == "python":
            assert outcome.entries_json is None
        else:
            assert outcome.entries_json == entries_json(outcome.entries)


@pytest.mark.parametrize("enabled", [True, False])
def test_a_scan_leaves_the_cyclic_collector_as_it_found_it(backend: str, tree: Path, enabled: bool) -> None:
    """The native batch pauses the collector while it builds its lists, and the Python side
    while it builds entries: either way a collector the caller turned off stays off, and one
    that runs runs again after."""
    import gc

    was = gc.isenabled()
    try:
        if enabled:
            gc.enable()
        else:
            gc.disable()
        assert as_tuples(chunker.scan_directory(tree, ignore=IGNORE, cache=False)) == oracle(tree, EXPECTED)
        assert gc.isenabled() is enabled
        streamed = anyio.run(lambda: chunker.chunk_directory(tree, ignore=IGNORE, cache=False))
        assert as_tuples(streamed) == oracle(tree, EXPECTED)
        assert gc.isenabled() is enabled
    finally:
        if was:
            gc.enable()
        else:
            gc.disable()
