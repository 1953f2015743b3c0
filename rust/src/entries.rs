//! A finished scan's entries as JSON text, in the shape of `ChunkedFileEntry`:
//! `[{"path":"a/b","size":5,"chunks":[{"hash":"<hex>","size":5}]},...]`, manifest order.
//!
//! It is what a push publishes as its version's file list (and digests for its ledger), and
//! byte for byte what `roost.chunker._model.entries_json` writes from the entry objects (compact,
//! non-ASCII as it is, strings escaped as Python's `json.encoder.encode_basestring` does):
//! 20,000 files in a few milliseconds, where the Python loop takes ~20.

use std::fmt::Write;

use crate::hash::{chunk_count, chunk_len, to_hex};
use crate::walk::FileList;

/// The JSON text of `files` with `digests` (every chunk's, in order); `None` when the digests
/// do not match the files' chunk counts.
#[must_use]
pub fn entries_json(files: &FileList, digests: &[[u8; 32]]) -> Option<String> {
    let mut out = String::with_capacity(files.len() * 160);
    out.push('[');
    let mut at = 0usize;
    for i in 0..files.len() {
        if i > 0 {
            out.push(',');
        }
        let size = files.size(i);
        out.push_str("{\"path\":");
        push_json_string(&mut out, files.rel(i));
        // writing to a String cannot fail
        let _ = write!(out, ",\"size\":{size},\"chunks\":[");
        for index in 0..chunk_count(size) {
            let digest = digests.get(at)?;
            at += 1;
            if index > 0 {
                out.push(',');
            }
            let _ = write!(
                out,
                "{{\"hash\":\"{}\",\"size\":{}}}",
                to_hex(digest),
                chunk_len(size, index)
            );
        }
        out.push_str("]}");
    }
    out.push(']');
    (at == digests.len()).then_some(out)
}

/// `text` as a JSON string the way `json.encoder.encode_basestring` writes it: `"` and `\`
/// escaped, the five short control escapes, other controls as `\u00XX` (lowercase), and
/// everything else, non-ASCII included, as it is.
fn push_json_string(out: &mut String, text: &str) {
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c if u32::from(c) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hash::CHUNK_SIZE;

    fn listed(files: &[(&str, u64)]) -> FileList {
        let mut list = FileList::default();
        for &(rel, size) in files {
            list.push(rel, size).unwrap();
        }
        list
    }

    #[test]
    fn entries_are_listed_with_every_chunk_and_its_size() {
        let files = listed(&[("a", 0), ("b/c", 5), ("d", CHUNK_SIZE + 1)]);
        let text = entries_json(&files, &[[1; 32], [2; 32], [3; 32]]).unwrap();
        let (one, two, three) = ("01".repeat(32), "02".repeat(32), "03".repeat(32));
        assert_eq!(
            text,
            format!(
                "[{{\"path\":\"a\",\"size\":0,\"chunks\":[]}},\
                 {{\"path\":\"b/c\",\"size\":5,\"chunks\":[{{\"hash\":\"{one}\",\"size\":5}}]}},\
                 {{\"path\":\"d\",\"size\":{},\"chunks\":[{{\"hash\":\"{two}\",\"size\":{CHUNK_SIZE}}},\
                 {{\"hash\":\"{three}\",\"size\":1}}]}}]",
                CHUNK_SIZE + 1
            )
        );
        assert_eq!(entries_json(&listed(&[]), &[]).unwrap(), "[]");
    }

    #[test]
    fn digests_that_do_not_match_the_chunk_counts_give_nothing() {
        let files = listed(&[("a", 5)]);
        assert!(entries_json(&files, &[]).is_none());
        assert!(entries_json(&files, &[[0; 32], [0; 32]]).is_none());
    }

    #[test]
    fn paths_are_escaped_as_python_escapes_them() {
        let files = listed(&[("q\"b\\s\n\r\t\u{8}\u{c}\u{1}\u{1f}\u{7f}é\u{2028}", 0)]);
        assert_eq!(
            entries_json(&files, &[]).unwrap(),
            "[{\"path\":\"q\\\"b\\\\s\\n\\r\\t\\b\\f\\u0001\\u001f\u{7f}é\u{2028}\",\"size\":0,\"chunks\":[]}]"
        );
    }
}
