//! Whether a tree's paths can all land on Windows as they are: the common answer, fast.
//!
//! The exact rules, and the report naming each bad path, live in Python
//! (`roost._push.portable`); this is its fast path for the usual tree of ASCII names. `true`
//! means every path is certainly fine; `false` means "not sure" (any non-ASCII character
//! included, since case folding beyond ASCII is Python's), and the exact pass decides.

use std::collections::HashSet;

/// Characters Windows refuses in a name (besides the ASCII controls), and the backslash, a
/// separator there.
const REFUSED: &[u8] = b"<>:\"|?*\\";
/// NTFS limits a name to 255 UTF-16 code units (one per ASCII character).
const MAX_NAME: usize = 255;
const DEVICES: [&[u8]; 4] = [b"con", b"prn", b"aux", b"nul"];
const NUMBERED_DEVICES: [&[u8]; 2] = [b"com", b"lpt"];

/// Whether every one of `paths` (POSIX, relative, one per file) is certainly portable; see the
/// module documentation.
#[must_use]
pub fn plainly_portable<S: AsRef<str>>(paths: &[S]) -> bool {
    let mut files: HashSet<Vec<u8>> = HashSet::with_capacity(paths.len());
    // every directory, as spelled and folded: a clash between two spellings, or with a file
    let mut directories: HashSet<&str> = HashSet::new();
    let mut folded_directories: HashSet<Vec<u8>> = HashSet::new();
    for path in paths {
        let path = path.as_ref();
        if !path.is_ascii() || !path.split('/').all(|name| plain_name(name.as_bytes())) {
            return false;
        }
        if !files.insert(path.to_ascii_lowercase().into_bytes()) {
            return false;
        }
        let mut parent = path;
        while let Some(cut) = parent.rfind('/') {
            parent = &parent[..cut];
            if !directories.insert(parent) {
                break; // its own parents are in already
            }
            folded_directories.insert(parent.to_ascii_lowercase().into_bytes());
        }
    }
    folded_directories.len() == directories.len() && folded_directories.is_disjoint(&files)
}

/// An ASCII name Windows takes as it is.
fn plain_name(name: &[u8]) -> bool {
    if name.len() > MAX_NAME || matches!(name.last(), Some(b'.' | b' ')) {
        return false;
    }
    if name.iter().any(|&c| c < 0x20 || REFUSED.contains(&c)) {
        return false;
    }
    !is_device(name)
}

/// `nul`, `NUL.txt`, `com1 .tar.gz`: the part before the first dot, trailing spaces ignored,
/// names a device.
fn is_device(name: &[u8]) -> bool {
    let stem = name.split(|&c| c == b'.').next().unwrap_or_default();
    let end = stem.iter().rposition(|&c| c != b' ').map_or(0, |i| i + 1);
    let stem = &stem[..end];
    match stem.len() {
        3 => DEVICES.iter().any(|d| stem.eq_ignore_ascii_case(d)),
        4 => {
            NUMBERED_DEVICES
                .iter()
                .any(|d| stem[..3].eq_ignore_ascii_case(d))
                && matches!(stem[3], b'1'..=b'9')
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::plainly_portable;

    fn plain(paths: &[&str]) -> bool {
        plainly_portable(paths)
    }

    #[test]
    fn an_ordinary_tree_is_plainly_portable() {
        assert!(plain(&[
            "a/b.txt",
            "a/c/d.bin",
            "README.md",
            "conf/console.txt",
            "x.con",
            "com0",
            "lpt10"
        ]));
        assert!(plain(&[]));
    }

    #[test]
    fn refused_characters_and_controls_are_not() {
        for path in [
            "a<b", "a>b", "a:b", "a\"b", "a|b", "a?b", "a*b", "a\\b", "a\u{1}b", "a\0b",
        ] {
            assert!(!plain(&[path]), "{path:?}");
        }
    }

    #[test]
    fn names_ending_with_a_dot_or_a_space_are_not() {
        for path in ["a.", "a ", "dir./x", "dir /x"] {
            assert!(!plain(&[path]), "{path:?}");
        }
    }

    #[test]
    fn device_names_are_not_in_any_case_or_with_any_extension() {
        for path in [
            "con",
            "PRN.txt",
            "x/Aux",
            "nul .tar.gz",
            "COM1",
            "lpt9.log",
            "a/com3/b",
        ] {
            assert!(!plain(&[path]), "{path:?}");
        }
    }

    #[test]
    fn a_name_longer_than_ntfs_allows_is_not() {
        let long = "x".repeat(256);
        assert!(!plain(&[long.as_str()]));
        assert!(plain(&["x".repeat(255).as_str()]));
    }

    #[test]
    fn case_clashes_between_files_and_directories_are_not() {
        assert!(!plain(&["Readme.md", "README.md"]));
        assert!(!plain(&["a/B/x", "a/b/y"]));
        assert!(!plain(&["a/b", "A/B/c"]));
        assert!(!plain(&["a/b", "a/b"]));
    }

    #[test]
    fn non_ascii_is_left_to_the_exact_pass() {
        assert!(!plain(&["caf\u{e9}.txt"]));
    }
}
