"""Ignore patterns: the documented semantics, and native == fallback (Hypothesis)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from roost.chunker import _glob as pyglob
from roost.chunker._backend import loaded

native = loaded()
if native is None:  # pragma: no cover
    pytest.fail("the native extension roost._native did not import", pytrace=False)


def compile_both(pattern: str) -> tuple[object, object]:
    """Each backend's compiled form of ``pattern``, or its error message."""
    assert native is not None
    try:
        n: object = native.compile_pattern(pattern)
    except ValueError as e:
        n = ("error", str(e))
    try:
        c = pyglob.compile_pattern(pattern)
        p: object = (c.is_path, c.dir_only, c.body)
    except ValueError as e:
        p = ("error", str(e))
    return n, p


def ignored(patterns: list[str], rel: str, is_dir: bool = False) -> bool:
    """Both backends' answer (asserting they agree)."""
    assert native is not None
    name = rel.rsplit("/", 1)[-1]
    a: bool = native.IgnoreMatcher(patterns).is_ignored(name, rel, is_dir)
    b = pyglob.IgnoreMatcher(patterns).is_ignored(name, rel, is_dir)
    assert a == b, (patterns, rel, is_dir)
    return a


@pytest.mark.parametrize(
    ("pattern", "rel", "is_dir", "expected"),
    [
        ("*.tmp", "a/b/x.tmp", False, True),
        ("*.tmp", "x.tmpl", False, False),
        ("__pycache__", "pkg/__pycache__", True, True),
        ("Backup*", "Backup 2024", True, True),
        ("renders/cache/**", "renders/cache/a/b.exr", False, True),
        ("renders/cache/**", "renders/cache", True, False),
        ("renders/cache/**", "x/renders/cache/a", False, False),
        ("**/*.log", "a.log", False, True),
        ("**/*.log", "a/b/c.log", False, True),
        ("a/**/b", "a/b", False, True),
        ("a/**/b", "a/x/y/b", False, True),
        ("a/*/b", "a/x/y/b", False, False),
        ("docs/*.md", "docs/a.md", False, True),
        ("docs/*.md", "docs/sub/a.md", False, False),
        ("/top.txt", "top.txt", False, True),
        ("/top.txt", "sub/top.txt", False, False),
        ("build/", "x/build", True, True),
        ("build/", "x/build", False, False),
        ("caf?", "café", False, True),
        ("[é]", "é", False, True),
        ("[!a]", "b", False, True),
        ("[!a]", "a", False, False),
        ("[^a-c]x", "dx", False, True),
        ("[]]", "]", False, True),
        ("[a-]", "-", False, True),
        ("\\*", "*", False, True),
        ("\\*", "x", False, False),
        ("{a,b}", "{a,b}", False, True),
        ("{a,b}", "a", False, False),
        ("a**b", "axxb", False, True),
        ("*", "any name", False, True),
        ("Case", "case", False, False),
        (".git", "sub/.git", True, True),  # a default ignore, also given explicitly
    ],
)
def test_semantics(pattern: str, rel: str, is_dir: bool, expected: bool) -> None:
    assert ignored([pattern], rel, is_dir) is expected


def test_default_ignores() -> None:
    assert ignored([], ".git", True)
    assert ignored([], "a/node_modules", True)
    assert not ignored([], ".gitignore")
    assert not ignored([], "a/.github", True)


@pytest.mark.parametrize(
    ("pattern", "reason"),
    [
        ("", "empty pattern"),
        ("/", "empty pattern"),
        ("a//b", "empty path component"),
        ("x\\", "trailing backslash"),
        ("a\\/b", "a '/' cannot be escaped"),
        ("[abc", "unclosed character class"),
        ("[]", "unclosed character class"),
        ("[z-a]", "invalid character range"),
    ],
)
def test_errors(pattern: str, reason: str) -> None:
    n, p = compile_both(pattern)
    assert n == p == ("error", f'invalid ignore pattern "{pattern}": {reason}')


ALPHABET = st.sampled_from([*"ab.-_*?[]!^\\/{},é日 \n", "**", "**/", "/**", "[a-z]", "[!b]"])
PATTERNS = st.lists(ALPHABET, max_size=8).map("".join)
NAME = st.lists(st.sampled_from([*"ab.-_*?[]!^\\{},é日 \n", "ab", "x.log"]), min_size=1, max_size=5).map(
    "".join
)
PATHS = st.lists(NAME, min_size=1, max_size=4).map("/".join)


@settings(max_examples=1500, deadline=None)
@given(PATTERNS)
def test_native_and_fallback_compile_alike(pattern: str) -> None:
    n, p = compile_both(pattern)
    assert n == p


@settings(max_examples=1500, deadline=None)
@given(st.lists(PATTERNS, max_size=3), PATHS, st.booleans())
def test_native_and_fallback_match_alike(patterns: list[str], rel: str, is_dir: bool) -> None:
    assert native is not None
    name = rel.rsplit("/", 1)[-1]
    outcomes: list[bool | str] = []
    for make in (native.IgnoreMatcher, pyglob.IgnoreMatcher):
        try:
            outcomes.append(make(patterns).is_ignored(name, rel, is_dir))
        except ValueError as e:
            outcomes.append(str(e))
    assert outcomes[0] == outcomes[1]


@settings(max_examples=500, deadline=None)
@given(PATHS)
def test_a_literal_name_matches_itself(rel: str) -> None:
    """Escaping every character of a name gives a pattern that matches exactly that name."""
    name = rel.rsplit("/", 1)[-1]
    pattern = "".join("\\" + c for c in name)
    assert ignored([pattern], rel)
    assert not ignored([pattern], rel + "x")
