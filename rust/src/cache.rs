//! The hash-cache lookup of a walk: which walked files the cache answers, and their chunks.
//!
//! The cache file, its format and its checksum belong to Python (`roost.chunker._hash_cache`,
//! which reads and writes it for both backends); Python hands over the body's sections once
//! the checksum matched, and this finds each walked file's key among the cached ones: the
//! warm path of every re-scan, 20,000 lookups and hex decodes that took Python ~20 ms.

use std::collections::HashMap;

use crate::walk::FileList;

/// Hex characters of one chunk hash in the cache.
const HEX: usize = 64;

/// The cached files of a walk.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Hits {
    /// Indices of the walked files the cache answers (ascending).
    pub indices: Vec<usize>,
    /// For each hit, its entry number in the cache.
    pub entries: Vec<usize>,
    /// The raw 32-byte digests of every hit's chunks, in order.
    pub digests: Vec<u8>,
    /// Distinct keys in the cache.
    pub stored: usize,
}

/// The cache key of walked file `i`, into `out`: little-endian `size i64, mtime_ns i64,
/// ctime_ns i64, inode u64, device u64`, then the UTF-8 path (Python's `make_key`).
pub fn key_into(files: &FileList, i: usize, out: &mut Vec<u8>) {
    let stamp = files.stamp(i);
    out.clear();
    out.extend_from_slice(
        &i64::try_from(files.size(i))
            .unwrap_or(i64::MAX)
            .to_le_bytes(),
    );
    out.extend_from_slice(&stamp.mtime_ns.to_le_bytes());
    out.extend_from_slice(&stamp.ctime_ns.to_le_bytes());
    out.extend_from_slice(&stamp.ino.to_le_bytes());
    out.extend_from_slice(&stamp.dev.to_le_bytes());
    out.extend_from_slice(files.rel(i).as_bytes());
}

fn u32s(data: &[u8]) -> impl Iterator<Item = usize> + '_ {
    data.chunks_exact(4)
        .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
}

/// Each byte's value as a hex digit (either case), or `NOT_HEX`.
const NOT_HEX: u8 = 0xff;
const NIBBLES: [u8; 256] = {
    let mut table = [NOT_HEX; 256];
    let mut c = 0;
    while c < 10 {
        table[b'0' as usize + c] = c as u8;
        c += 1;
    }
    let mut c = 0;
    while c < 6 {
        table[b'a' as usize + c] = 10 + c as u8;
        table[b'A' as usize + c] = 10 + c as u8;
        c += 1;
    }
    table
};

fn decode_hex(text: &[u8], out: &mut Vec<u8>) -> Option<()> {
    for pair in text.chunks_exact(2) {
        let (high, low) = (NIBBLES[usize::from(pair[0])], NIBBLES[usize::from(pair[1])]);
        if high == NOT_HEX || low == NOT_HEX {
            return None;
        }
        out.push((high << 4) | low);
    }
    Some(())
}

/// The walked `files` the cache answers, from its sections: `lengths` (u32 per entry, the
/// key lengths), the concatenated `keys`, `counts` (u32 per entry, its chunk count) and
/// `hashes` (64 hex characters a chunk). `None` when the sections disagree with one another
/// or a hit's hash is not hex: the cache is then not used. A key listed twice answers with
/// its last entry.
#[must_use]
pub fn lookup(
    files: &FileList,
    lengths: &[u8],
    keys: &[u8],
    counts: &[u8],
    hashes: &[u8],
) -> Option<Hits> {
    if lengths.len() % 4 != 0 || counts.len() != lengths.len() {
        return None;
    }
    let mut index: HashMap<&[u8], usize> = HashMap::with_capacity(lengths.len() / 4);
    let mut at = 0usize;
    for (j, len) in u32s(lengths).enumerate() {
        let end = at.checked_add(len)?;
        index.insert(keys.get(at..end)?, j);
        at = end;
    }
    if at != keys.len() {
        return None;
    }
    let mut start = Vec::with_capacity(lengths.len() / 4 + 1);
    start.push(0usize);
    let mut chunks = 0usize;
    for count in u32s(counts) {
        chunks = chunks.checked_add(count)?;
        start.push(chunks);
    }
    if chunks.checked_mul(HEX)? != hashes.len() {
        return None;
    }
    let mut hits = Hits {
        stored: index.len(),
        digests: Vec::with_capacity(hashes.len() / 2),
        ..Hits::default()
    };
    let mut key = Vec::with_capacity(256);
    for i in 0..files.len() {
        key_into(files, i, &mut key);
        if let Some(&j) = index.get(key.as_slice()) {
            hits.indices.push(i);
            hits.entries.push(j);
            decode_hex(
                &hashes[start[j] * HEX..start[j + 1] * HEX],
                &mut hits.digests,
            )?;
        }
    }
    Some(hits)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::platform::Stamp;

    fn walked(files: &[(&str, u64, i64)]) -> FileList {
        let mut list = FileList::default();
        for &(rel, size, mtime_ns) in files {
            let stamp = Stamp {
                mtime_ns,
                ctime_ns: 7,
                ino: 11,
                dev: 13,
            };
            list.push_stamped(rel, size, stamp).unwrap();
        }
        list
    }

    /// The sections of a cache holding `entries`: (key, chunk hashes in hex).
    fn sections(entries: &[(Vec<u8>, Vec<String>)]) -> [Vec<u8>; 4] {
        let mut out: [Vec<u8>; 4] = Default::default();
        for (key, hashes) in entries {
            out[0].extend_from_slice(&u32::try_from(key.len()).unwrap().to_le_bytes());
            out[1].extend_from_slice(key);
            out[2].extend_from_slice(&u32::try_from(hashes.len()).unwrap().to_le_bytes());
            for h in hashes {
                out[3].extend_from_slice(h.as_bytes());
            }
        }
        out
    }

    fn key(files: &FileList, i: usize) -> Vec<u8> {
        let mut k = Vec::new();
        key_into(files, i, &mut k);
        k
    }

    fn run(files: &FileList, s: &[Vec<u8>; 4]) -> Option<Hits> {
        lookup(files, &s[0], &s[1], &s[2], &s[3])
    }

    #[test]
    fn the_key_is_the_documented_layout() {
        let files = walked(&[("a/b", 5, 3)]);
        let mut want = Vec::new();
        for v in [5i64, 3, 7] {
            want.extend_from_slice(&v.to_le_bytes());
        }
        for v in [11u64, 13] {
            want.extend_from_slice(&v.to_le_bytes());
        }
        want.extend_from_slice(b"a/b");
        assert_eq!(key(&files, 0), want);
    }

    #[test]
    fn hits_are_the_files_whose_key_is_cached_in_walk_order() {
        let files = walked(&[("a", 1, 1), ("b", 2, 1), ("c", 3, 1)]);
        let (ha, hc) = ("ab".repeat(32), "CD".repeat(32));
        let s = sections(&[
            (key(&files, 2), vec![hc]),
            (b"stale".to_vec(), vec!["00".repeat(32)]),
            (key(&files, 0), vec![ha]),
        ]);
        let hits = run(&files, &s).unwrap();
        assert_eq!(hits.indices, vec![0, 2]);
        assert_eq!(hits.entries, vec![2, 0]);
        assert_eq!(hits.digests, [[0xab; 32], [0xcd; 32]].concat());
        assert_eq!(hits.stored, 3);
    }

    #[test]
    fn a_changed_stat_is_a_miss_and_a_repeated_key_answers_with_its_last_entry() {
        let files = walked(&[("a", 1, 1)]);
        let moved = walked(&[("a", 1, 2)]);
        let s = sections(&[
            (key(&files, 0), vec!["11".repeat(32)]),
            (key(&files, 0), vec!["22".repeat(32)]),
        ]);
        assert_eq!(run(&moved, &s).unwrap().indices, Vec::<usize>::new());
        let hits = run(&files, &s).unwrap();
        assert_eq!((hits.entries, hits.stored), (vec![1], 1));
        assert_eq!(hits.digests, vec![0x22; 32]);
    }

    #[test]
    fn sections_that_disagree_or_hashes_that_are_not_hex_are_refused() {
        let files = walked(&[("a", 1, 1)]);
        let good = sections(&[(key(&files, 0), vec!["11".repeat(32)])]);
        assert!(run(&files, &good).is_some());
        let mut short_keys = good.clone();
        short_keys[1].pop();
        assert!(run(&files, &short_keys).is_none());
        let mut odd_lengths = good.clone();
        odd_lengths[0].push(0);
        assert!(run(&files, &odd_lengths).is_none());
        let mut extra_hash = good.clone();
        extra_hash[3].extend_from_slice(&[b'0'; 64]);
        assert!(run(&files, &extra_hash).is_none());
        let mut not_hex = good.clone();
        not_hex[3][5] = b'g';
        assert!(run(&files, &not_hex).is_none());
    }
}
