//! Reading and hashing one chunk: SHA-256 over `len` bytes of a file at `offset`.
//!
//! Two read paths, chosen per job:
//! - `ReadMode::Buffer` (default): `pread` into a reused per-worker buffer in pieces of
//!   `piece` bytes (default 256 KiB), hashing each piece while it is still in the CPU cache.
//! - `ReadMode::Mmap`: map the chunk and hash the mapping (chunks under 64 KiB are still read:
//!   a mapping costs more than it saves there). A file truncated by another process while mapped
//!   raises SIGBUS on Unix, which kills the process; that risk is one more reason it is not the
//!   default. Figures in `benchmarks/README.md`.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use sha2::{Digest, Sha256};

use crate::error::ScanError;
use crate::platform;

/// The protocol's chunk size: 4 MiB.
pub const CHUNK_SIZE: u64 = 4 * 1024 * 1024;
/// The default read piece of `ReadMode::Buffer`.
pub const DEFAULT_PIECE: usize = 256 * 1024;
const MMAP_MIN: usize = 64 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadMode {
    Buffer,
    Mmap,
}

/// The number of chunks of a file of `size` bytes (0 for an empty file).
#[must_use]
pub fn chunk_count(size: u64) -> u64 {
    size.div_ceil(CHUNK_SIZE)
}

/// The size of chunk `index` of a file of `size` bytes.
#[must_use]
pub fn chunk_len(size: u64, index: u64) -> u64 {
    size.saturating_sub(index * CHUNK_SIZE).min(CHUNK_SIZE)
}

/// Lowercase hex of a digest.
#[must_use]
pub fn to_hex(digest: &[u8; 32]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(64);
    for b in digest {
        out.push(char::from(HEX[usize::from(b >> 4)]));
        out.push(char::from(HEX[usize::from(b & 15)]));
    }
    out
}

/// A worker's chunk reader, owning its reused buffer.
pub struct ChunkReader {
    mode: ReadMode,
    piece: usize,
    buf: Vec<u8>,
}

/// Why reading a chunk failed, before the path is attached.
#[derive(Debug)]
pub enum ReadFail {
    Io(std::io::Error),
    /// The file ended `got` bytes into the chunk.
    Short {
        got: usize,
    },
}

impl ReadFail {
    /// The error for chunk `offset..offset + len` of `path`.
    #[must_use]
    pub fn at(self, path: PathBuf, offset: u64, len: usize) -> ScanError {
        match self {
            Self::Io(err) => ScanError::Io { path, err },
            Self::Short { got } => ScanError::Changed {
                path,
                offset,
                reason: format!("short read ({got} of {len} bytes)"),
            },
        }
    }
}

impl ChunkReader {
    #[must_use]
    pub fn new(mode: ReadMode, piece: usize) -> Self {
        Self {
            mode,
            piece: piece.clamp(4096, CHUNK_SIZE as usize),
            buf: Vec::new(),
        }
    }

    /// SHA-256 of `len` bytes of `path` at `offset`; a short read is `ScanError::Changed`.
    pub fn hash(&mut self, path: &Path, offset: u64, len: usize) -> Result<[u8; 32], ScanError> {
        let file = platform::open_read(path).map_err(|e| ScanError::io(path, e))?;
        self.hash_open(&file, offset, len)
            .map_err(|f| f.at(path.to_path_buf(), offset, len))
    }

    /// Like `hash`, on a file that is already open.
    pub fn hash_open(
        &mut self,
        file: &File,
        offset: u64,
        len: usize,
    ) -> Result<[u8; 32], ReadFail> {
        if self.mode == ReadMode::Mmap && len >= MMAP_MIN {
            return hash_mmap(file, offset, len);
        }
        let mut hasher = Sha256::new();
        let mut done = 0usize;
        let want_buf = len.min(self.piece);
        if self.buf.len() < want_buf {
            self.buf.resize(want_buf, 0);
        }
        while done < len {
            let n = (len - done).min(self.piece);
            let got =
                read_full(file, &mut self.buf[..n], offset + done as u64).map_err(ReadFail::Io)?;
            hasher.update(&self.buf[..got]);
            done += got;
            if got < n {
                return Err(ReadFail::Short { got: done });
            }
        }
        Ok(hasher.finalize().into())
    }
}

impl ChunkReader {
    /// Reads `dest.len()` bytes of `file` at `offset` into `dest` and hashes them there, piece
    /// by piece while each piece is still in the CPU cache; a short read is `ReadFail::Short`.
    pub fn read_hash_into(
        &self,
        file: &File,
        offset: u64,
        dest: &mut [u8],
    ) -> Result<[u8; 32], ReadFail> {
        let mut hasher = Sha256::new();
        let len = dest.len();
        let mut done = 0usize;
        while done < len {
            let n = (len - done).min(self.piece);
            let piece = &mut dest[done..done + n];
            let got = read_full(file, piece, offset + done as u64).map_err(ReadFail::Io)?;
            hasher.update(&piece[..got]);
            done += got;
            if got < n {
                return Err(ReadFail::Short { got: done });
            }
        }
        Ok(hasher.finalize().into())
    }
}

/// Reads until `buf` is full or the file ends; returns the bytes read.
pub fn read_full(file: &File, buf: &mut [u8], offset: u64) -> std::io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match platform::read_at(file, &mut buf[got..], offset + got as u64) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

fn hash_mmap(file: &File, offset: u64, len: usize) -> Result<[u8; 32], ReadFail> {
    let size = file.metadata().map_err(ReadFail::Io)?.len();
    let avail = size.saturating_sub(offset);
    if avail < len as u64 {
        return Err(ReadFail::Short {
            got: usize::try_from(avail).unwrap_or(0),
        });
    }
    // SAFETY: the mapping is read-only and private to this call. Another process truncating the
    // file while it is mapped can fault the read (SIGBUS); see the module documentation.
    let map = unsafe {
        memmap2::MmapOptions::new()
            .offset(offset)
            .len(len)
            .map(file)
    }
    .map_err(ReadFail::Io)?;
    Ok(Sha256::digest(&map[..]).into())
}

/// `threads`, or one per available core when it is 0.
#[must_use]
pub fn thread_count(threads: usize) -> usize {
    if threads > 0 {
        threads
    } else {
        std::thread::available_parallelism().map_or(2, std::num::NonZeroUsize::get)
    }
}

/// SHA-256 of `len` bytes of `path` at `offset`, opened only if it is the file `id` names
/// (the walk's identity; `None`: not checked); another file is `ScanError::Swapped`.
pub fn hash_checked(
    reader: &mut ChunkReader,
    path: &Path,
    offset: u64,
    len: usize,
    id: Option<platform::FileId>,
) -> Result<[u8; 32], ScanError> {
    let file = platform::open_checked(path, id)
        .map_err(|e| ScanError::io(path, e))?
        .ok_or_else(|| ScanError::Swapped {
            path: path.to_path_buf(),
        })?;
    reader
        .hash_open(&file, offset, len)
        .map_err(|f| f.at(path.to_path_buf(), offset, len))
}

/// Digests by index, as one worker found them.
type Indexed = Result<Vec<(usize, [u8; 32])>, ScanError>;

/// Reads and hashes every `(path, offset, len)` on `threads` workers (0: one per core), nothing
/// else: the read + hash ceiling that a scan is measured against, and a bulk verify.
pub fn hash_chunks(
    chunks: &[(PathBuf, u64, usize)],
    threads: usize,
    mode: ReadMode,
    piece: usize,
) -> Result<Vec<[u8; 32]>, ScanError> {
    let next = AtomicUsize::new(0);
    let workers = thread_count(threads).min(chunks.len()).max(1);
    let parts: Vec<Indexed> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..workers)
            .map(|_| {
                s.spawn(|| {
                    let mut reader = ChunkReader::new(mode, piece);
                    let mut done = Vec::new();
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some((path, offset, len)) = chunks.get(i) else {
                            return Ok(done);
                        };
                        done.push((i, reader.hash(path, *offset, *len)?));
                    }
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join().unwrap_or_else(|_| {
                    Err(ScanError::Internal("a hash thread panicked".to_owned()))
                })
            })
            .collect()
    });
    let mut out = vec![[0u8; 32]; chunks.len()];
    for part in parts {
        for (i, d) in part? {
            out[i] = d;
        }
    }
    Ok(out)
}

/// The xxh3-128 digest of each file's whole content, big-endian (the canonical byte order, as
/// Python's `xxhash.xxh3_128().digest()`), in the order of `paths`.
///
/// The files are split across up to `available_parallelism` threads, each reading into one
/// reused 1 MiB buffer. The first I/O error (in `paths` order among the failed ones) is returned.
/// For the hash cache's `verify="fast"`: much faster than SHA-256, and not a security hash.
pub fn xxh3_files(paths: &[PathBuf]) -> Result<Vec<[u8; 16]>, ScanError> {
    fn one(path: &Path, buf: &mut [u8]) -> Result<[u8; 16], ScanError> {
        use std::io::Read;
        let mut file = platform::open_read(path).map_err(|e| ScanError::io(path, e))?;
        let mut hasher = xxhash_rust::xxh3::Xxh3::new();
        loop {
            match file.read(buf) {
                Ok(0) => break,
                Ok(n) => hasher.update(&buf[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(ScanError::io(path, e)),
            }
        }
        Ok(hasher.digest128().to_be_bytes())
    }
    let threads = std::thread::available_parallelism()
        .map_or(1, std::num::NonZeroUsize::get)
        .min(paths.len())
        .max(1);
    let per = paths.len().div_ceil(threads).max(1);
    std::thread::scope(|s| {
        let handles: Vec<_> = paths
            .chunks(per)
            .map(|part| {
                s.spawn(move || {
                    let mut buf = vec![0u8; 1 << 20];
                    part.iter()
                        .map(|p| one(p, &mut buf))
                        .collect::<Result<Vec<_>, _>>()
                })
            })
            .collect();
        let mut out = Vec::with_capacity(paths.len());
        for h in handles {
            match h.join() {
                Ok(part) => out.extend(part?),
                Err(panic) => std::panic::resume_unwind(panic),
            }
        }
        Ok(out)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sha_hex(data: &[u8]) -> String {
        to_hex(&Sha256::digest(data).into())
    }

    #[test]
    fn chunk_math() {
        assert_eq!(chunk_count(0), 0);
        assert_eq!(chunk_count(1), 1);
        assert_eq!(chunk_count(CHUNK_SIZE), 1);
        assert_eq!(chunk_count(CHUNK_SIZE + 1), 2);
        assert_eq!(chunk_len(CHUNK_SIZE + 1, 1), 1);
        assert_eq!(chunk_len(CHUNK_SIZE + 1, 0), CHUNK_SIZE);
    }

    #[test]
    fn hex_of_empty() {
        assert_eq!(
            sha_hex(b""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn both_modes_agree_and_detect_short_reads() {
        let dir = std::env::temp_dir().join(format!("roost-hash-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("f");
        let data: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
        std::fs::write(&p, &data).unwrap();
        for mode in [ReadMode::Buffer, ReadMode::Mmap] {
            let mut r = ChunkReader::new(mode, 4096);
            let h = r.hash(&p, 1000, 200_000).unwrap();
            assert_eq!(to_hex(&h), sha_hex(&data[1000..201_000]));
            let h = r.hash(&p, 0, 10).unwrap();
            assert_eq!(to_hex(&h), sha_hex(&data[..10]));
            match r.hash(&p, 200_000, 100_001) {
                Err(ScanError::Changed { reason, offset, .. }) => {
                    assert_eq!(offset, 200_000);
                    assert_eq!(reason, "short read (100000 of 100001 bytes)");
                }
                other => panic!("{other:?}"),
            }
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn xxh3_of_files() {
        let dir = std::env::temp_dir().join(format!("roost-xxh3-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let big: Vec<u8> = (0..3_000_000u32).map(|i| (i % 253) as u8).collect();
        let files: Vec<(PathBuf, Vec<u8>)> = vec![
            (dir.join("empty"), Vec::new()),
            (dir.join("small"), b"hello".to_vec()),
            (dir.join("big"), big),
        ];
        for (p, d) in &files {
            std::fs::write(p, d).unwrap();
        }
        let paths: Vec<PathBuf> = files.iter().map(|(p, _)| p.clone()).collect();
        let got = xxh3_files(&paths).unwrap();
        for ((_, d), g) in files.iter().zip(&got) {
            assert_eq!(*g, xxhash_rust::xxh3::xxh3_128(d).to_be_bytes());
        }
        // the canonical (big-endian) digest of the empty input
        assert_eq!(
            got[0],
            0x99aa_06d3_0147_98d8_6001_c324_468d_497fu128.to_be_bytes()
        );
        assert!(xxh3_files(&[]).unwrap().is_empty());
        match xxh3_files(&[dir.join("small"), dir.join("missing")]) {
            Err(ScanError::Io { path, .. }) => assert_eq!(path, dir.join("missing")),
            other => panic!("{other:?}"),
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
