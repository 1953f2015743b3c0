"""Ignore files (.roostignore, gitignore syntax), negation, the default ignores, unmatched patterns."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from roost import chunker
from roost.chunker import DEFAULT_IGNORES, PatternError
from roost.chunker import _glob as pyglob
from roost.chunker._backend import loaded

from .conftest import use_backend

FILES = [
    "a.tmp",
    "keep.tmp",
    "#hash.txt",
    "!bang.txt",
    "space.txt ",
    "build/out.o",
    "src/build",
    "src/main.c",
    "docs/x.log",
    "deep/a/b/x.log",
    "top.txt",
    "sub/top.txt",
    "Backup/project.1.toe",
    "sub/Backup/old.toe",
    "Backup.toe",
    ".DS_Store",
    "sub/Thumbs.db",
    "desktop.ini",
    ".git/HEAD",
    "node_modules/x.js",
]

IGNORE_FILE = "\n".join(
    [
        "# a comment, then a blank line",
        "",
        "*.tmp",
        "!keep.tmp",
        "\\#hash.txt",
        "\\!bang.txt",
        "space.txt\\ ",  # an escaped trailing space is kept
        "build/",
        "/top.txt",
        "**/*.log",
        "!docs/x.log",
        "trailing.txt   ",  # unescaped trailing spaces are dropped
        "never-matches-*",
    ]
)


def _tree(root: Path) -> Path:
    for rel in FILES:
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(rel.encode())
    return root


def _paths(root: Path, **kwargs: object) -> tuple[list[str], tuple[str, ...]]:
    entries, report = chunker._scan_tree(root, **kwargs)  # type: ignore[arg-type]
    return [e.path for e in entries], report.unmatched_ignores


@pytest.mark.parametrize("name", ["native", "python"])
def test_roostignore_at_the_root_is_read_with_gitignore_syntax(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    use_backend(monkeypatch, name)
    root = _tree(tmp_path)
    (root / ".roostignore").write_text(IGNORE_FILE, encoding="utf-8")
    paths, unmatched = _paths(root)
    assert paths == [
        "Backup.toe",
        "docs/x.log",
        "keep.tmp",
        "src/build",  # "build/" matches directories only
        "src/main.c",
        "sub/top.txt",  # "/top.txt" is anchored
    ]
    assert unmatched == ("trailing.txt", "never-matches-*")
    # an ignore file in the tree configures the tool: it is not published (unless re-included)
    (root / "more").write_text("!/.roostignore\n", encoding="utf-8")
    paths, _ = _paths(root, ignore_file=root / "more", default_ignores=False)
    assert ".roostignore" in paths
    assert "more" not in paths


def test_ignore_file_parameter(backend: str, tmp_path: Path) -> None:
    root = _tree(tmp_path / "root")
    (root / ".roostignore").write_text("*.txt\n", encoding="utf-8")
    other = tmp_path / "elsewhere.ignore"
    other.write_text("*.tmp\n", encoding="utf-8")
    paths, _ = _paths(root, ignore_file=other)
    assert {"top.txt", ".roostignore"} <= set(paths)
    assert "a.tmp" not in paths
    paths, _ = _paths(root, ignore_file=False)
    assert {"top.txt", "a.tmp", ".roostignore"} <= set(paths)
    paths, _ = _paths(root, ignore_file=False, default_ignores=False)
    assert {".git/HEAD", "node_modules/x.js", "Backup/project.1.toe", ".DS_Store"} <= set(paths)
    paths, _ = _paths(root)
    assert "top.txt" not in paths
    assert ".roostignore" not in paths
    assert chunker.scan_directory(root, ignore_file=False, default_ignores=False, cache=False)


def test_an_ignore_file_in_a_pruned_directory_is_not_reported_unmatched(backend: str, tmp_path: Path) -> None:
    (tmp_path / ".git").mkdir()
    (tmp_path / ".git" / "roost.ignore").write_text("*.tmp\n", encoding="utf-8")
    (tmp_path / "a.tmp").write_bytes(b"a")
    (tmp_path / "b.txt").write_bytes(b"b")
    paths, unmatched = _paths(tmp_path, ignore_file=tmp_path / ".git" / "roost.ignore")
    assert paths == ["b.txt"]
    assert unmatched == ()


def test_a_missing_ignore_file_is_an_error_naming_it(tmp_path: Path) -> None:
    missing = tmp_path / "nope.ignore"
    with pytest.raises(FileNotFoundError) as info:
        chunker.scan_directory(tmp_path, ignore_file=missing)
    assert info.value.filename == str(missing)
    assert str(missing) in str(info.value)


def test_a_bad_line_names_the_file_and_line(backend: str, tmp_path: Path) -> None:
    (tmp_path / ".roostignore").write_text("ok\n# fine\nbad[\n", encoding="utf-8")
    with pytest.raises(PatternError, match=r"\.roostignore, line 3") as info:
        chunker.scan_directory(tmp_path)
    assert info.value.pattern == "bad["


def test_bad_patterns_are_pattern_errors_on_both_backends(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen = []
    for name in ("native", "python"):
        use_backend(monkeypatch, name)
        with pytest.raises(PatternError) as info:
            chunker.scan_directory(tmp_path, ignore=["ok", "!"])
        seen.append((type(info.value), info.value.pattern, info.value.reason, str(info.value)))
    assert seen[0] == seen[1]
    assert seen[0][1] == "!"


def test_default_ignores_cover_touchdesigner_and_os_litter(backend: str, tmp_path: Path) -> None:
    assert {"Backup/", ".DS_Store", "Thumbs.db", "desktop.ini"} <= set(DEFAULT_IGNORES)
    root = _tree(tmp_path)
    paths, unmatched = _paths(root, ignore_file=False)
    for gone in ("Backup/project.1.toe", "sub/Backup/old.toe", ".DS_Store", "sub/Thumbs.db", "desktop.ini"):
        assert gone not in paths
    assert "Backup.toe" in paths  # "Backup/" is a directory-only pattern
    assert unmatched == ()  # the defaults are never reported


@pytest.mark.anyio
async def test_negated_ignore_patterns_and_unmatched_in_the_discover_event(
    backend: str, tmp_path: Path
) -> None:
    root = _tree(tmp_path)
    events: list[chunker.ChunkProgressEvent] = []
    entries = await chunker.chunk_directory(
        root, ignore=["*.tmp", "!keep.tmp", "nothing-here"], ignore_file=False, on_progress=events.append
    )
    paths = [e.path for e in entries]
    assert "keep.tmp" in paths
    assert "a.tmp" not in paths
    discover = events[0]
    assert isinstance(discover, chunker.DiscoverProgress)
    assert discover.unmatched_ignores == ("nothing-here",)


# ---------------------------------------------------------------------------------------------
# native and fallback agree: ordered rules, negation, unmatched

native = loaded()

ATOM = st.sampled_from(["a", "b", "*", "?", "**", "x.log", "[ab]", "é"])
GLOB = st.lists(ATOM, min_size=1, max_size=3).map("/".join)
RULE = st.tuples(st.booleans(), GLOB, st.booleans()).map(
    lambda t: ("!" if t[0] else "") + t[1] + ("/" if t[2] else "")
)
NAME = st.sampled_from(["a", "b", "ab", "x.log", "é", "c"])
PATH = st.lists(NAME, min_size=1, max_size=4).map("/".join)


@settings(max_examples=400, deadline=None)
@given(st.lists(RULE, max_size=5), st.lists(st.tuples(PATH, st.booleans()), min_size=1, max_size=6))
def test_native_and_fallback_agree_on_last_match_and_unmatched(
    rules: list[str], entries: list[tuple[str, bool]]
) -> None:
    assert native is not None
    outcomes: list[object] = []
    for make in (native.IgnoreMatcher, pyglob.IgnoreMatcher):
        try:
            m = make(rules, defaults=False)
        except ValueError as e:
            outcomes.append(("error", str(e)))
            continue
        answers = [m.is_ignored(rel.rsplit("/", 1)[-1], rel, is_dir) for rel, is_dir in entries]
        outcomes.append((answers, m.unmatched()))
    assert outcomes[0] == outcomes[1]


def test_the_last_matching_pattern_decides() -> None:
    for make in (pyglob.IgnoreMatcher, *([native.IgnoreMatcher] if native is not None else [])):
        m = make(["*.tmp", "!keep.tmp", "keep*"], defaults=False)
        assert m.is_ignored("a.tmp", "a.tmp", False)
        assert m.is_ignored("keep.tmp", "keep.tmp", False)  # "keep*" comes last
        m = make(["keep*", "*.tmp", "!keep.tmp"], defaults=False)
        assert not m.is_ignored("keep.tmp", "keep.tmp", False)
        assert m.unmatched() == []


def test_the_ignore_file_is_read_before_any_work(tmp_path: Path) -> None:
    (tmp_path / "f").write_bytes(b"x")
    (tmp_path / ".roostignore").write_bytes(b"ok\n\xff\n")
    with pytest.raises(ValueError, match=r"line 2: not valid UTF-8"):
        chunker.scan_directory(tmp_path)
    assert not os.listdir(os.environ["ROOST_CACHE_DIR"])
