//! The Python glue (`roost._native`): plain tuples, lists, str and bytes only.
//!
//! Every call that touches the disk or waits releases the GIL.

use std::path::{Path, PathBuf};
use std::time::Duration;

use pyo3::create_exception;
use pyo3::exceptions::{
    PyFileNotFoundError, PyIsADirectoryError, PyOSError, PyPermissionError, PyRuntimeError,
    PyValueError,
};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList, PyString};
use sha2::{Digest, Sha256};

use std::sync::{Arc, Mutex};

use crate::cache;
use crate::entries;
use crate::error::{non_utf8_message, ScanError, SWAPPED};
use crate::hash::{self, ChunkReader, ReadMode, DEFAULT_PIECE};
use crate::hold::Buffer;
use crate::job::{Cached, JobConfig, Next, ScanJob, Source};
use crate::pattern::{self, IgnoreMatcher};
use crate::platform::{self, OsCode};
use crate::portable;

create_exception!(
    _native,
    SourceChangedError,
    PyRuntimeError,
    "A file changed, or is not the walked one: args are (path, offset, reason)."
);
create_exception!(
    _native,
    PatternError,
    PyValueError,
    "An ignore pattern that cannot be parsed (attributes `pattern` and `reason`)."
);

fn strerror(code: i32) -> String {
    let text = std::io::Error::from_raw_os_error(code).to_string();
    match text.rfind(" (os error ") {
        Some(i) => text[..i].to_owned(),
        None => text,
    }
}

fn io_error(path: &Path, err: &std::io::Error) -> PyErr {
    let filename = path.to_path_buf();
    match platform::os_code(err) {
        // OSError(errno, strerror, filename) picks the subclass (FileNotFoundError, ...) itself.
        Some(OsCode::Errno(code)) => PyOSError::new_err((code, strerror(code), filename)),
        Some(OsCode::WinError(code)) => PyOSError::new_err((0, strerror(code), filename, code)),
        None => {
            let msg = err.to_string();
            match err.kind() {
                std::io::ErrorKind::NotFound => PyFileNotFoundError::new_err((2, msg, filename)),
                std::io::ErrorKind::PermissionDenied => {
                    PyPermissionError::new_err((13, msg, filename))
                }
                std::io::ErrorKind::IsADirectory => {
                    PyIsADirectoryError::new_err((21, msg, filename))
                }
                _ => PyOSError::new_err((5, msg, filename)),
            }
        }
    }
}

/// `PatternError(message)` with `pattern` and `reason` attributes, like the fallback's.
fn pattern_error(p: &pattern::PatternError) -> PyErr {
    let err = PatternError::new_err(p.to_string());
    Python::with_gil(|py| {
        let value = err.value(py);
        // Setting attributes on a fresh exception instance cannot fail short of memory.
        let _ = value.setattr("pattern", p.pattern.as_str());
        let _ = value.setattr("reason", p.reason);
    });
    err
}

fn to_pyerr(e: ScanError) -> PyErr {
    match e {
        ScanError::Io { path, err } => io_error(&path, &err),
        ScanError::NonUtf8 { path } => PyValueError::new_err(non_utf8_message(&path)),
        ScanError::Changed {
            path,
            offset,
            reason,
        } => SourceChangedError::new_err((path, offset, reason)),
        ScanError::Swapped { path } => SourceChangedError::new_err((path, 0u64, SWAPPED)),
        ScanError::Pattern(p) => pattern_error(&p),
        ScanError::Cancelled | ScanError::Internal(_) => PyRuntimeError::new_err(e.to_string()),
    }
}

fn config(threads: usize, mmap: bool, piece_kib: usize) -> JobConfig {
    JobConfig {
        threads,
        mode: if mmap {
            ReadMode::Mmap
        } else {
            ReadMode::Buffer
        },
        piece: if piece_kib == 0 {
            DEFAULT_PIECE
        } else {
            piece_kib * 1024
        },
    }
}

fn seconds(timeout: f64) -> Duration {
    Duration::try_from_secs_f64(timeout.max(0.0)).unwrap_or(Duration::from_secs(3600))
}

/// A running scan. `wait_walk` -> `start_hashing` -> `next_batch` until it returns None.
#[pyclass(module = "roost._native", name = "ScanJob", frozen)]
struct PyScanJob {
    job: ScanJob,
    delivered: Mutex<Delivered>,
}

/// What `next_batch` has handed out: every chunk digest in order, and whether it was all.
#[derive(Default)]
struct Delivered {
    digests: Vec<[u8; 32]>,
    complete: bool,
}

impl PyScanJob {
    fn new_job(job: ScanJob) -> Self {
        Self {
            job,
            delivered: Mutex::default(),
        }
    }

    fn delivered(&self) -> std::sync::MutexGuard<'_, Delivered> {
        self.delivered
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[pymethods]
impl PyScanJob {
    /// Starts walking `root` (absolute, symlinks resolved) with the defaults (unless
    /// `defaults` is false) and `patterns`.
    #[new]
    #[pyo3(signature = (root, patterns, defaults = true, *, threads = 0, mmap = false, piece_kib = 0))]
    fn new(
        root: PathBuf,
        patterns: Vec<String>,
        defaults: bool,
        threads: usize,
        mmap: bool,
        piece_kib: usize,
    ) -> PyResult<Self> {
        let matcher = IgnoreMatcher::new(&patterns, defaults).map_err(|e| to_pyerr(e.into()))?;
        let matcher = Arc::new(matcher);
        let job = ScanJob::start(
            Source::Tree { root, matcher },
            config(threads, mmap, piece_kib),
        )
        .map_err(to_pyerr)?;
        Ok(Self::new_job(job))
    }

    /// A job over one regular file; its entry's path is "".
    #[staticmethod]
    #[pyo3(signature = (path, *, threads = 0, mmap = false, piece_kib = 0))]
    fn for_file(path: PathBuf, threads: usize, mmap: bool, piece_kib: usize) -> PyResult<Self> {
        let job = ScanJob::start(Source::File { path }, config(threads, mmap, piece_kib))
            .map_err(to_pyerr)?;
        Ok(Self::new_job(job))
    }

    /// `(file_count, total_bytes)` once the walk is done, or None after `timeout` seconds.
    fn wait_walk(&self, py: Python<'_>, timeout: f64) -> PyResult<Option<(usize, u64)>> {
        let r = py
            .allow_threads(|| self.job.wait_walk(seconds(timeout)))
            .map_err(to_pyerr)?;
        Ok(r.map(|s| (s.files, s.bytes)))
    }

    /// `(path, reason)` of each entry the walk left out, sorted by path (empty before the walk).
    fn skipped(&self) -> Vec<(String, &'static str)> {
        self.job.skipped().map_or_else(Vec::new, |s| {
            s.iter().map(|(r, why)| (r.clone(), why.as_str())).collect()
        })
    }

    /// The given ignore patterns that matched nothing (empty before the walk).
    fn unmatched(&self) -> Vec<String> {
        self.job.unmatched()
    }

    /// Lets the hashing begin. `skip` (sorted indices into the walk's files) are not read:
    /// `digests` holds the raw 32-byte digests of all their chunks, in order. False, and
    /// nothing started, when those do not match the walk (a stale or corrupt cache). With
    /// `hold`, a chunk is read only once `grant` gave it a buffer, and `next_batch` returns its
    /// bytes.
    #[pyo3(signature = (skip = None, digests = None, hold = false))]
    fn start_hashing(
        &self,
        skip: Option<Vec<usize>>,
        digests: Option<&[u8]>,
        hold: bool,
    ) -> PyResult<bool> {
        let cached = match skip {
            None => None,
            Some(skip) => {
                let n = self.job.files().map_or(0, |f| f.len());
                let mut flags = vec![false; n];
                for i in skip {
                    let Some(slot) = flags.get_mut(i) else {
                        return Ok(false);
                    };
                    *slot = true;
                }
                let raw = digests.unwrap_or_default();
                if raw.len() % 32 != 0 {
                    return Ok(false);
                }
                let digests = raw
                    .chunks_exact(32)
                    .map(|c| {
                        let mut d = [0u8; 32];
                        d.copy_from_slice(c);
                        d
                    })
                    .collect();
                Some(Cached {
                    skip: flags,
                    digests,
                })
            }
        };
        self.job.start_hashing(cached, hold).map_err(to_pyerr)
    }

    /// Grants the next chunk reads (in order) `bytes` objects to read into, while their sizes
    /// fit in `budget` bytes (the first one whatever its size). Returns the bytes granted: 0
    /// when the job does not hold bytes, `budget` is 0, or every read has its buffer.
    fn grant(&self, py: Python<'_>, budget: usize) -> PyResult<usize> {
        self.job.grant(budget, |len| new_buffer(py, len))
    }

    /// The hash-cache keys of the walk's files, in manifest order: `(keys, sizes, mtime_ns)`,
    /// each key the little-endian `size i64, mtime_ns i64, ctime_ns i64, inode u64, device u64`
    /// followed by the UTF-8 path (see `roost._hash_cache`). None before the walk is done.
    #[allow(clippy::type_complexity)]
    fn file_keys<'py>(
        &self,
        py: Python<'py>,
    ) -> PyResult<Option<(Bound<'py, PyList>, Vec<u64>, Vec<i64>)>> {
        let Some(files) = self.job.files() else {
            return Ok(None);
        };
        let n = files.len();
        let mut sizes = Vec::with_capacity(n);
        let mut mtimes = Vec::with_capacity(n);
        let mut buf = Vec::with_capacity(256);
        let keys = PyList::empty(py);
        for i in 0..n {
            cache::key_into(&files, i, &mut buf);
            keys.append(PyBytes::new(py, &buf))?;
            sizes.push(files.size(i));
            mtimes.push(files.stamp(i).mtime_ns);
        }
        Ok(Some((keys, sizes, mtimes)))
    }

    /// The walked files the hash cache answers, from the sections of its checked body (key
    /// lengths, keys, chunk counts, hex hashes; see `cache.rs`): `(indices, entries, digests,
    /// stored)`, or None when the sections disagree or the walk is not done.
    #[allow(clippy::type_complexity)]
    fn cache_hits<'py>(
        &self,
        py: Python<'py>,
        lengths: &[u8],
        keys: &[u8],
        counts: &[u8],
        hashes: &[u8],
    ) -> Option<(Vec<usize>, Vec<usize>, Bound<'py, PyBytes>, usize)> {
        let files = self.job.files()?;
        let hits = py.allow_threads(|| cache::lookup(&files, lengths, keys, counts, hashes))?;
        let digests = PyBytes::new(py, &hits.digests);
        Some((hits.indices, hits.entries, digests, hits.stored))
    }

    /// Every entry the job delivered, as JSON text (see `entries.rs`), once `next_batch` has
    /// returned None; None before.
    fn entries_json(&self, py: Python<'_>) -> Option<String> {
        let files = self.job.files()?;
        let delivered = self.delivered();
        if !delivered.complete {
            return None;
        }
        py.allow_threads(|| entries::entries_json(&files, &delivered.digests))
    }

    /// How many files this job has opened to hash (cached files are not).
    #[getter]
    fn files_read(&self) -> usize {
        self.job.files_read()
    }

    /// The next files in manifest order, as five lists: paths, sizes, the chunk hashes of all
    /// of them in order (a file of `size` bytes has `ceil(size / 4 MiB)`), each file's
    /// `(device, inode)` as the walk saw it, and, when the job holds bytes, `(hash, bytes)` of
    /// the chunks read since the last batch (in no particular order, possibly of files still
    /// unfinished; empty otherwise). Empty lists after `timeout` seconds without news; None at
    /// the end.
    #[allow(clippy::type_complexity)]
    fn next_batch<'py>(
        &self,
        py: Python<'py>,
        timeout: f64,
    ) -> PyResult<
        Option<(
            Bound<'py, PyList>,
            Bound<'py, PyList>,
            Bound<'py, PyList>,
            Bound<'py, PyList>,
            Bound<'py, PyList>,
        )>,
    > {
        let next = py
            .allow_threads(|| self.job.next_batch(seconds(timeout)))
            .map_err(to_pyerr)?;
        let batch = match next {
            Next::Done => {
                self.delivered().complete = true;
                return Ok(None);
            }
            Next::Pending => {
                return Ok(Some((
                    PyList::empty(py),
                    PyList::empty(py),
                    PyList::empty(py),
                    PyList::empty(py),
                    PyList::empty(py),
                )))
            }
            Next::Batch(b) => b,
        };
        self.delivered().digests.extend_from_slice(&batch.digests);
        let _paused = CollectorPaused::new(py);
        let range = batch.start..batch.end;
        let files = &batch.files;
        let paths = PyList::new(py, range.clone().map(|i| PyString::new(py, files.rel(i))))?;
        let sizes = PyList::new(py, range.clone().map(|i| files.size(i)))?;
        let ids = PyList::new(
            py,
            range.map(|i| {
                let st = files.stamp(i);
                (st.dev, st.ino)
            }),
        )?;
        let hashes = PyList::new(
            py,
            batch
                .digests
                .iter()
                .map(|d| PyString::new(py, &hash::to_hex(d))),
        )?;
        let held = PyList::new(
            py,
            batch
                .held
                .into_iter()
                .map(|(d, b)| (PyString::new(py, &hash::to_hex(&d)), held_object(py, b))),
        )?;
        Ok(Some((paths, sizes, hashes, ids, held)))
    }

    /// Stops the job: the walk and the workers finish within one chunk.
    fn cancel(&self) {
        self.job.cancel();
    }
}

/// The cyclic garbage collector paused while this lives, and as it was after.
///
/// A batch of a re-scan is 20,000 paths, hashes and `(device, inode)` tuples built in one go
/// with the GIL held, so no Python code runs in between: left running, the collector passed
/// over the growing lists some 85 times and ran one full collection of the whole heap (17-27
/// ms of a re-push); paused, the objects meet it once, after the batch.
struct CollectorPaused {
    was_enabled: bool,
}

impl CollectorPaused {
    fn new(_py: Python<'_>) -> Self {
        // SAFETY: the GIL is held (the `Python` token proves it); PyGC_Disable only flips the
        // interpreter's flag and returns the previous state.
        let was_enabled = unsafe { pyo3::ffi::PyGC_Disable() } != 0;
        Self { was_enabled }
    }
}

impl Drop for CollectorPaused {
    fn drop(&mut self) {
        if self.was_enabled {
            // SAFETY: dropped where it was made, within the same GIL-holding call.
            unsafe {
                pyo3::ffi::PyGC_Enable();
            }
        }
    }
}

/// An uninitialised `bytes` object of `len` bytes as a buffer for a worker to fill (the worker
/// zeroes it first, without the GIL: see `Buffer::new`).
///
/// The object is handed to Python code only after the worker has filled it (`next_batch`), and
/// dropped unseen otherwise, so its contents are never observed before they are written.
fn new_buffer(py: Python<'_>, len: usize) -> PyResult<Buffer> {
    let size = pyo3::ffi::Py_ssize_t::try_from(len)
        .map_err(|_| PyValueError::new_err(format!("chunk of {len} bytes is too large")))?;
    // SAFETY: with the GIL held; a null source asks CPython for an uninitialised buffer.
    let raw = unsafe { pyo3::ffi::PyBytes_FromStringAndSize(std::ptr::null(), size) };
    // SAFETY: a new reference (or null with the error set), with the GIL held.
    let object: Py<PyBytes> = unsafe { Bound::from_owned_ptr_or_err(py, raw)? }
        .downcast_into::<PyBytes>()?
        .unbind();
    // SAFETY: `object` is a bytes object; its buffer lives (and does not move) as long as it.
    let data = unsafe { pyo3::ffi::PyBytes_AsString(object.as_ptr()) };
    let ptr = std::ptr::NonNull::new(data.cast::<u8>())
        .ok_or_else(|| PyRuntimeError::new_err("a bytes object without a buffer"))?;
    // SAFETY: `len` writable bytes at `ptr`, kept alive by `object`, which nothing else sees.
    Ok(unsafe { Buffer::new(ptr, len, Box::new(object)) })
}

/// The `bytes` object behind a held buffer (None for one `new_buffer` did not make).
fn held_object(py: Python<'_>, buffer: Buffer) -> PyObject {
    buffer
        .into_owner()
        .downcast::<Py<PyBytes>>()
        .map_or_else(|_| py.None(), |object| object.into_any())
}

/// The compiled ignore set, for tests: `is_ignored(name, rel, is_dir)`.
#[pyclass(module = "roost._native", name = "IgnoreMatcher", frozen)]
struct PyIgnoreMatcher {
    inner: IgnoreMatcher,
}

#[pymethods]
impl PyIgnoreMatcher {
    #[new]
    #[pyo3(signature = (patterns, *, defaults = true))]
    fn new(patterns: Vec<String>, defaults: bool) -> PyResult<Self> {
        let inner = IgnoreMatcher::new(&patterns, defaults).map_err(|e| to_pyerr(e.into()))?;
        Ok(Self { inner })
    }

    fn is_ignored(&self, name: &str, rel: &str, is_dir: bool) -> bool {
        self.inner.is_ignored(name, rel, is_dir)
    }

    /// The given patterns (not the defaults) that matched no entry so far.
    fn unmatched(&self) -> Vec<String> {
        self.inner.unmatched()
    }
}

/// `(is_path, dir_only, regex_body)` of one pattern (the fallback builds the same text).
#[pyfunction]
fn compile_pattern(pattern: &str) -> PyResult<(bool, bool, String)> {
    let c = pattern::compile(pattern).map_err(|e| to_pyerr(e.into()))?;
    Ok((c.is_path, c.dir_only, c.body))
}

fn read_some(
    path: &Path,
    offset: u64,
    buf: &mut [u8],
    id: Option<platform::FileId>,
) -> Result<usize, ScanError> {
    let file = platform::open_checked(path, id)
        .map_err(|e| ScanError::io(path, e))?
        .ok_or_else(|| ScanError::Swapped {
            path: path.to_path_buf(),
        })?;
    hash::read_full(&file, buf, offset).map_err(|e| ScanError::io(path, e))
}

/// Reads up to `size` bytes at `offset` (GIL released): `(data, sha256_hex or None)`.
///
/// `data` is shorter than `size` when the file is. With `file_id` (the walk's `(device,
/// inode)`), another file at `path` raises `SourceChangedError`.
#[pyfunction]
#[pyo3(signature = (path, offset, size, want_hash = true, file_id = None))]
fn read_chunk<'py>(
    py: Python<'py>,
    path: PathBuf,
    offset: u64,
    size: usize,
    want_hash: bool,
    file_id: Option<(u64, u64)>,
) -> PyResult<(Bound<'py, PyBytes>, Option<String>)> {
    let mut got = 0usize;
    let mut digest: Option<String> = None;
    let mut failure: Option<ScanError> = None;
    let data = PyBytes::new_with(py, size, |buf: &mut [u8]| {
        py.allow_threads(|| match read_some(&path, offset, buf, file_id) {
            Ok(n) => {
                got = n;
                if want_hash {
                    digest = Some(hash::to_hex(&Sha256::digest(&buf[..n]).into()));
                }
            }
            Err(e) => failure = Some(e),
        });
        Ok(())
    })?;
    if let Some(e) = failure {
        return Err(to_pyerr(e));
    }
    if got < size {
        return Ok((PyBytes::new(py, &data.as_bytes()[..got]), digest));
    }
    Ok((data, digest))
}

/// Whether `size` bytes at `offset` of `path` hash to `expected_hash` (GIL released).
///
/// A short read is `False`; an I/O error raises `OSError`; with `file_id`, another file at
/// `path` raises `SourceChangedError`.
#[pyfunction]
#[pyo3(signature = (path, offset, size, expected_hash, file_id = None))]
fn verify_chunk(
    py: Python<'_>,
    path: PathBuf,
    offset: u64,
    size: usize,
    expected_hash: &str,
    file_id: Option<(u64, u64)>,
) -> PyResult<bool> {
    let expected = expected_hash.to_ascii_lowercase();
    py.allow_threads(|| {
        let mut reader = ChunkReader::new(ReadMode::Buffer, DEFAULT_PIECE);
        match hash::hash_checked(&mut reader, &path, offset, size, file_id) {
            Ok(d) => Ok(hash::to_hex(&d) == expected),
            Err(ScanError::Changed { .. }) => Ok(false),
            Err(e) => Err(e),
        }
    })
    .map_err(to_pyerr)
}

/// SHA-256 hex of each `(path, offset, size)`, read and hashed on all cores (GIL released).
///
/// Nothing but reads and hashes: the ceiling a scan is measured against, or a bulk verify.
#[pyfunction]
#[pyo3(signature = (chunks, *, threads = 0, mmap = false, piece_kib = 0))]
fn hash_chunks(
    py: Python<'_>,
    chunks: Vec<(PathBuf, u64, usize)>,
    threads: usize,
    mmap: bool,
    piece_kib: usize,
) -> PyResult<Vec<String>> {
    let c = config(threads, mmap, piece_kib);
    let digests = py
        .allow_threads(|| hash::hash_chunks(&chunks, c.threads, c.mode, c.piece))
        .map_err(to_pyerr)?;
    Ok(digests.iter().map(hash::to_hex).collect())
}

/// The xxh3-128 digest (16 bytes, big-endian) of each file's whole content, on all cores with
/// the GIL released; an unreadable file raises `OSError` with its path.
#[pyfunction]
fn xxh3_files(py: Python<'_>, paths: Vec<PathBuf>) -> PyResult<Vec<Py<PyBytes>>> {
    let digests = py
        .allow_threads(|| hash::xxh3_files(&paths))
        .map_err(to_pyerr)?;
    Ok(digests
        .iter()
        .map(|d| PyBytes::new(py, d).unbind())
        .collect())
}

/// Whether every path (POSIX, relative) certainly lands on Windows as it is; `False` means
/// "not sure" (see `portable.rs`). Runs with the GIL released.
#[pyfunction]
fn plainly_portable(py: Python<'_>, paths: Vec<String>) -> bool {
    py.allow_threads(|| portable::plainly_portable(&paths))
}

/// CPU features that matter to hashing, for diagnostics and benchmarks.
#[pyfunction]
fn cpu_features() -> Vec<(&'static str, bool)> {
    vec![("sha", crate::cpu_has_sha_extensions())]
}

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add("CHUNK_SIZE", hash::CHUNK_SIZE)?;
    m.add("DEFAULT_IGNORES", pattern::DEFAULT_IGNORES.to_vec())?;
    m.add(
        "SourceChangedError",
        m.py().get_type::<SourceChangedError>(),
    )?;
    m.add("PatternError", m.py().get_type::<PatternError>())?;
    m.add_class::<PyScanJob>()?;
    m.add_class::<PyIgnoreMatcher>()?;
    m.add_function(wrap_pyfunction!(compile_pattern, m)?)?;
    m.add_function(wrap_pyfunction!(read_chunk, m)?)?;
    m.add_function(wrap_pyfunction!(verify_chunk, m)?)?;
    m.add_function(wrap_pyfunction!(hash_chunks, m)?)?;
    m.add_function(wrap_pyfunction!(cpu_features, m)?)?;
    m.add_function(wrap_pyfunction!(xxh3_files, m)?)?;
    m.add_function(wrap_pyfunction!(plainly_portable, m)?)?;
    Ok(())
}
