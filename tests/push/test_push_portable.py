"""Names that cannot land on Windows machines are refused before any upload, all in one error."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from roost import PushOptions, UnportablePath, UnportablePathError
from roost._push import push_directory
from roost._push.portable import _all_portable, unportable_paths
from roost.chunker import _backend

from .fakes import SITE, FakeApi, rebuild, write_tree

pytestmark = pytest.mark.anyio

ROOST = "rst_portable"


@pytest.mark.parametrize(
    ("path", "reason"),
    [
        ("..\\..\\evil.txt", "backslash"),
        ("C:\\Windows\\x.txt", "backslash"),
        ("a/line\nbreak.txt", "U+000A"),
        ("tab\there", "U+0009"),
        ("a/b<c", "'<'"),
        ("a>b", "'>'"),
        ("c:d", "':'"),
        ('say"hi"', "'\"'"),
        ("pipe|d", "'|'"),
        ("what?", "'?'"),
        ("star*", "'*'"),
        ("dir./file", "ends with a dot"),
        ("file.", "ends with a dot"),
        ("dir /file", "ends with a space"),
        ("CON", "reserved"),
        ("sub/nul.txt", "reserved"),
        ("Aux.tar.gz", "reserved"),
        ("prn", "reserved"),
        ("COM1.log", "reserved"),
        ("lpt9", "reserved"),
        ("com\u00b9.txt", "reserved"),
        ("x/" + "a" * 256, "256 UTF-16"),
        ("\U0001f989" * 128, "256 UTF-16"),  # 128 characters, 256 code units
    ],
)
def test_each_rule(path: str, reason: str) -> None:
    found = unportable_paths([path, "fine/name.txt"])
    assert [p.path for p in found] == [path]
    assert reason in found[0].reason


@pytest.mark.parametrize(
    "path",
    [
        "console.txt",
        "com10",
        "lpt0.txt",
        "nul_file",
        "a" * 255,
        "\U0001f989" * 127,
        "dotted.name.txt",
        ".hidden",
    ],
)
def test_names_that_are_fine(path: str) -> None:
    assert unportable_paths([path]) == []


def test_case_collisions_are_reported_with_what_they_collide_with() -> None:
    found = unportable_paths(
        ["README.md", "docs/a.txt", "Readme.md", "DOCS/b.txt", "x/Y", "x/y/z", "straße", "STRASSE"]
    )
    by_path = {p.path: p.reason for p in found}
    assert by_path["Readme.md"] == "differs from 'README.md' only in case"
    assert by_path["DOCS/b.txt"] == "its directory 'DOCS' differs from 'docs' only in case"
    assert by_path["x/Y"] == "is a file where 'x/y' is a directory"
    assert by_path["STRASSE"] == "differs from 'straße' only in case"  # casefold, not lower
    assert set(by_path) == {"Readme.md", "DOCS/b.txt", "x/Y", "STRASSE"}


def test_error_lists_every_offender_and_truncates_its_message() -> None:
    paths = [UnportablePath(f"bad{i}?", "contains '?'") for i in range(25)]
    error = UnportablePathError("/root", paths)
    assert isinstance(error, ValueError)
    assert len(error.paths) == 25
    message = str(error)
    assert "25 paths" in message
    assert "allow_unportable_paths=True" in message
    assert "'bad19?'" in message
    assert "'bad20?'" not in message
    assert "and 5 more" in message
    again = pickle.loads(pickle.dumps(error))
    assert again.paths == error.paths
    assert str(again) == message


def unportable_tree(root: Path) -> dict[str, bytes]:
    files = {
        "ok.txt": b"fine",
        "back\\slash.txt": b"1",
        "new\nline.txt": b"2",
        "nul.txt": b"3",
        "trailing. ": b"4",
        "Same.txt": b"5",
        "same.TXT": b"6",
    }
    write_tree(root, files)
    return files


async def test_push_refuses_unportable_names_before_any_upload(tmp_path: Path) -> None:
    unportable_tree(tmp_path)
    api = FakeApi()
    async with api.client() as http:
        with pytest.raises(UnportablePathError) as caught:
            await push_directory(http, tmp_path, ROOST, PushOptions(site_id=SITE))
    assert sorted(p.path for p in caught.value.paths) == sorted(
        ["back\\slash.txt", "new\nline.txt", "nul.txt", "trailing. ", "same.TXT"]
    )
    assert api.check_batches == []
    assert api.puts == []
    assert api.publishes == []


async def test_allow_unportable_paths_publishes_them_verbatim(tmp_path: Path) -> None:
    files = unportable_tree(tmp_path)
    api = FakeApi()
    async with api.client() as http:
        result = await push_directory(
            http, tmp_path, ROOST, PushOptions(site_id=SITE, allow_unportable_paths=True)
        )
    assert rebuild(api, result.version_id) == files


_TRICKY = st.text(alphabet="aAcCoOnNuUlLpPtTxX1\u00b9 .:<\\\x01\u017f\u00e9", min_size=1, max_size=6)
_PATHS = st.lists(st.lists(_TRICKY, min_size=1, max_size=3).map("/".join), min_size=1, max_size=6)


@settings(max_examples=400, deadline=None)
@given(_PATHS)
def test_the_whole_tree_check_never_passes_a_path_the_exact_check_refuses(paths: list[str]) -> None:
    # the fast answer for a whole tree is only ever "all portable"; doubts go to the exact pass
    if _all_portable(paths):
        assert unportable_paths(paths) == []
    assert unportable_paths(paths) == unportable_paths(list(paths))


_ASCII_TRICKY = st.text(alphabet="aAcCoOnNuUlLpPtTxX19 .:<\\\x01", min_size=1, max_size=6)
_ASCII_PATHS = st.lists(st.lists(_ASCII_TRICKY, min_size=1, max_size=3).map("/".join), min_size=1, max_size=6)


@pytest.mark.skipif(_backend.loaded() is None, reason="the native core is not built")
@settings(max_examples=600, deadline=None)
@given(st.one_of(_PATHS, _ASCII_PATHS))
def test_the_native_whole_tree_check_is_exact_for_ascii_and_never_passes_a_refused_path(
    paths: list[str],
) -> None:
    native = _backend.loaded()
    assert native is not None
    paths = list(dict.fromkeys(paths))  # a walk lists each file once (a repeat is "not sure")
    clean = unportable_paths(paths) == []
    if all(path.isascii() for path in paths):
        assert native.plainly_portable(paths) is clean
    elif native.plainly_portable(paths):
        raise AssertionError(f"non-ASCII paths are left to the exact pass: {paths!r}")


def test_a_long_name_under_a_short_path_rule_still_counts() -> None:
    assert _all_portable(["a/" + "x" * 120]) is True
    assert _all_portable(["a/" + "\u00e9" * 200]) is False
    assert [p.path for p in unportable_paths(["ok", "a/" + "x" * 300])] == ["a/" + "x" * 300]
