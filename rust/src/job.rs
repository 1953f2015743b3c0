//! A scan job: walk (or one file), then hash every chunk in parallel, streaming results.
//!
//! A coordinator thread walks the tree, sorts the files by path and reports the totals
//! (`wait_walk`). It then waits for `start_hashing`, so that the caller can emit its "discover"
//! event between the walk and the first read. Hashing is split by chunk, not by file: every chunk
//! of every file is one task, taken in manifest order by `threads` workers, so one huge file still
//! uses every core. The coordinator collects the digests and hands out batches of finished files
//! in manifest order (`next_batch`), at most every `FLUSH_INTERVAL` or `FLUSH_FILES` files.
//! `cancel` (or dropping the job) stops the walk and the workers within one chunk.
//!
//! The hash cache: after the walk, the caller reads each file's stat fingerprint (`files`) and
//! may pass, with `start_hashing`, the files it already knows (`Cached`): those are never opened,
//! their digests are emitted in their place in manifest order. `files_read` counts the files the
//! job opened.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender, SyncSender};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use crate::error::ScanError;
use crate::hash::{chunk_count, chunk_len, ChunkReader, ReadMode, CHUNK_SIZE, DEFAULT_PIECE};
use crate::pattern::IgnoreMatcher;
use crate::platform;
use crate::walk::{walk, FileList};

const FLUSH_FILES: usize = 4096;
const FLUSH_INTERVAL: Duration = Duration::from_millis(20);
/// Worker results are sent in groups of this many chunks (or after a large chunk).
const WORKER_GROUP: usize = 64;

/// Tuning knobs of a job (the defaults are the measured best; see benchmarks/README.md).
#[derive(Debug, Clone, Copy)]
pub struct JobConfig {
    /// Hashing and walking threads; 0 means one per available core.
    pub threads: usize,
    pub mode: ReadMode,
    pub piece: usize,
}

impl Default for JobConfig {
    fn default() -> Self {
        Self {
            threads: 0,
            mode: ReadMode::Buffer,
            piece: DEFAULT_PIECE,
        }
    }
}

impl JobConfig {
    fn thread_count(&self) -> usize {
        if self.threads > 0 {
            self.threads
        } else {
            thread::available_parallelism().map_or(2, std::num::NonZeroUsize::get)
        }
    }
}

/// What a job scans.
pub enum Source {
    /// A directory tree: `root` must be absolute and canonical.
    Tree {
        root: PathBuf,
        matcher: IgnoreMatcher,
    },
    /// One regular file (its entry has an empty relative path).
    File { path: PathBuf },
}

/// The walk's totals.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Summary {
    pub files: usize,
    pub bytes: u64,
}

/// Files `start..end` of `files` (manifest order), with all their chunk digests in order.
#[derive(Debug, Clone)]
pub struct Batch {
    pub files: Arc<FileList>,
    pub start: usize,
    pub end: usize,
    pub digests: Vec<[u8; 32]>,
}

impl Batch {
    /// Each file of the batch: path, size and digests.
    pub fn iter(&self) -> impl Iterator<Item = (&str, u64, &[[u8; 32]])> {
        let mut at = 0usize;
        (self.start..self.end).map(move |i| {
            let size = self.files.size(i);
            let n = usize::try_from(chunk_count(size)).unwrap_or(usize::MAX);
            let end = at.saturating_add(n).min(self.digests.len());
            let d = &self.digests[at..end];
            at = end;
            (self.files.rel(i), size, d)
        })
    }
}

/// A file with all its chunk digests.
pub type HashedFile = (String, u64, Vec<[u8; 32]>);

enum Msg {
    Batch(Batch),
    Done,
    Error(ScanError),
}

/// The outcome of `next_batch`.
#[derive(Debug)]
pub enum Next {
    Batch(Batch),
    /// Nothing new within the timeout.
    Pending,
    /// Every file was delivered.
    Done,
}

type Walked = Result<(Summary, Arc<FileList>), ScanError>;

enum WalkState {
    Waiting(Receiver<Walked>),
    Ready(Summary, Arc<FileList>),
    Failed,
}

/// Files whose digests the caller already has (from the hash cache): they are not read.
#[derive(Debug, Clone, Default)]
pub struct Cached {
    /// One flag per file of the walk, in manifest order: true to skip it.
    pub skip: Vec<bool>,
    /// The digests of every chunk of the skipped files, in manifest order.
    pub digests: Vec<[u8; 32]>,
}

pub struct ScanJob {
    cancel: Arc<AtomicBool>,
    walk: Mutex<WalkState>,
    go: Mutex<Option<SyncSender<Option<Cached>>>>,
    batches: Mutex<Receiver<Msg>>,
    done: AtomicBool,
    files_read: Arc<AtomicUsize>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl ScanJob {
    /// Starts the walk in a background thread.
    pub fn start(source: Source, config: JobConfig) -> Result<Self, ScanError> {
        let cancel = Arc::new(AtomicBool::new(false));
        let (walk_tx, walk_rx) = mpsc::sync_channel(1);
        let (go_tx, go_rx) = mpsc::sync_channel(1);
        let (batch_tx, batch_rx) = mpsc::channel();
        let flag = Arc::clone(&cancel);
        let files_read = Arc::new(AtomicUsize::new(0));
        let read = Arc::clone(&files_read);
        thread::Builder::new()
            .name("roost-scan".to_owned())
            .spawn(move || {
                let ctx = Coord {
                    cancel: &flag,
                    files_read: &read,
                };
                coordinator(source, config, &ctx, &walk_tx, &go_rx, &batch_tx);
            })
            .map_err(|e| ScanError::Internal(format!("cannot start the scan thread: {e}")))?;
        Ok(Self {
            cancel,
            walk: Mutex::new(WalkState::Waiting(walk_rx)),
            go: Mutex::new(Some(go_tx)),
            batches: Mutex::new(batch_rx),
            done: AtomicBool::new(false),
            files_read,
        })
    }

    /// The files found by the walk (manifest order, with their stat fingerprints), once
    /// `wait_walk` has returned them.
    pub fn files(&self) -> Option<Arc<FileList>> {
        match &*lock(&self.walk) {
            WalkState::Ready(_, files) => Some(Arc::clone(files)),
            _ => None,
        }
    }

    /// How many files the job has opened to hash so far.
    pub fn files_read(&self) -> usize {
        self.files_read.load(Ordering::Relaxed)
    }

    /// The walk's totals, or `None` if it has not finished within `timeout`.
    pub fn wait_walk(&self, timeout: Duration) -> Result<Option<Summary>, ScanError> {
        let mut state = lock(&self.walk);
        let outcome = match &*state {
            WalkState::Ready(s, _) => return Ok(Some(*s)),
            WalkState::Failed => {
                return Err(ScanError::Internal("the walk already failed".to_owned()))
            }
            WalkState::Waiting(rx) => rx.recv_timeout(timeout),
        };
        match outcome {
            Ok(Ok((s, files))) => {
                *state = WalkState::Ready(s, files);
                Ok(Some(s))
            }
            Ok(Err(e)) => {
                *state = WalkState::Failed;
                Err(e)
            }
            Err(RecvTimeoutError::Timeout) => Ok(None),
            Err(RecvTimeoutError::Disconnected) => {
                *state = WalkState::Failed;
                Err(self.stopped("walk"))
            }
        }
    }

    fn stopped(&self, what: &str) -> ScanError {
        if self.cancel.load(Ordering::Relaxed) {
            ScanError::Cancelled
        } else {
            ScanError::Internal(format!("the {what} thread stopped unexpectedly"))
        }
    }

    /// Lets the hashing begin (after the walk), skipping the `cached` files; later calls do
    /// nothing. `cached` must match the walk (one flag per file, every chunk digest of the
    /// skipped files): anything else is an error and nothing starts.
    pub fn start_hashing(&self, cached: Option<Cached>) -> Result<(), ScanError> {
        if let Some(c) = &cached {
            let files = self
                .files()
                .ok_or_else(|| ScanError::Internal("start_hashing before the walk".to_owned()))?;
            let want: u64 = (0..files.len())
                .filter(|&i| c.skip.get(i).copied().unwrap_or(false))
                .map(|i| chunk_count(files.size(i)))
                .sum();
            if c.skip.len() != files.len() || want != c.digests.len() as u64 {
                return Err(ScanError::Internal(format!(
                    "cached digests do not match the walk: {} flags for {} files, {} digests for {want} chunks",
                    c.skip.len(),
                    files.len(),
                    c.digests.len()
                )));
            }
        }
        if let Some(tx) = lock(&self.go).take() {
            // The coordinator may be gone already (cancelled or failed): `next_batch` says so.
            let _ = tx.send(cached);
        }
        Ok(())
    }

    /// The next batch of finished files, `Pending` after `timeout`, or `Done`.
    pub fn next_batch(&self, timeout: Duration) -> Result<Next, ScanError> {
        if self.done.load(Ordering::Relaxed) {
            return Ok(Next::Done);
        }
        let rx = lock(&self.batches);
        match rx.recv_timeout(timeout) {
            Ok(Msg::Batch(b)) => Ok(Next::Batch(b)),
            Ok(Msg::Done) => {
                self.done.store(true, Ordering::Relaxed);
                Ok(Next::Done)
            }
            Ok(Msg::Error(e)) => Err(e),
            Err(RecvTimeoutError::Timeout) => Ok(Next::Pending),
            Err(RecvTimeoutError::Disconnected) => Err(self.stopped("scan")),
        }
    }

    /// Stops the walk and the workers; pending and later calls report `Cancelled`.
    pub fn cancel(&self) {
        self.cancel.store(true, Ordering::Relaxed);
        lock(&self.go).take();
    }

    /// Runs the whole job and collects every file (for tests and simple callers).
    pub fn run_to_end(&self) -> Result<Vec<HashedFile>, ScanError> {
        while self.wait_walk(Duration::from_secs(1))?.is_none() {}
        self.start_hashing(None)?;
        let mut out = Vec::new();
        loop {
            match self.next_batch(Duration::from_secs(1))? {
                Next::Batch(b) => {
                    out.extend(b.iter().map(|(r, s, d)| (r.to_owned(), s, d.to_vec())))
                }
                Next::Pending => {}
                Next::Done => return Ok(out),
            }
        }
    }
}

impl Drop for ScanJob {
    fn drop(&mut self) {
        self.cancel();
    }
}

struct Coord<'a> {
    cancel: &'a AtomicBool,
    files_read: &'a AtomicUsize,
}

fn coordinator(
    source: Source,
    config: JobConfig,
    ctx: &Coord<'_>,
    walk_tx: &SyncSender<Walked>,
    go_rx: &Receiver<Option<Cached>>,
    out: &Sender<Msg>,
) {
    let cancel = ctx.cancel;
    let threads = config.thread_count();
    let (base, found) = match source {
        Source::Tree { root, matcher } => {
            let found = walk(&root, &matcher, threads, cancel).map(|mut files| {
                files.sort();
                files
            });
            (root, found)
        }
        Source::File { path } => {
            let found = std::fs::metadata(&path)
                .map(|m| {
                    let mut list = FileList::default();
                    // One path cannot exceed 4 GiB.
                    let _ = list.push_stamped("", m.len(), platform::stamp(&m));
                    list
                })
                .map_err(|e| ScanError::io(&path, e));
            (path, found)
        }
    };
    let files = match found {
        Ok(f) => Arc::new(f),
        Err(e) => {
            let _ = walk_tx.send(Err(e));
            return;
        }
    };
    let summary = Summary {
        files: files.len(),
        bytes: files.iter().map(|(_, size)| size).sum(),
    };
    if walk_tx.send(Ok((summary, Arc::clone(&files)))).is_err() {
        return;
    }
    let cached = loop {
        match go_rx.recv_timeout(Duration::from_millis(50)) {
            Ok(c) => break c,
            Err(RecvTimeoutError::Timeout) if !cancel.load(Ordering::Relaxed) => {}
            Err(_) => return,
        }
    };
    let msg = match hash_all(&base, &files, cached.as_ref(), config, threads, ctx, out) {
        Ok(()) => Msg::Done,
        Err(e) => {
            cancel.store(true, Ordering::Relaxed);
            Msg::Error(e)
        }
    };
    let _ = out.send(msg);
}

/// The absolute path of `rel` under `base` (`base` itself for the empty path).
fn abs_path(base: &Path, rel: &str) -> PathBuf {
    let mut p = base.to_path_buf();
    if !rel.is_empty() {
        for part in rel.split('/') {
            p.push(part);
        }
    }
    p
}

type Results = Result<Vec<(usize, [u8; 32])>, ScanError>;

/// Chunk tasks in manifest order: task `t` is chunk `t - first[f]` of the file `f` with
/// `first[f] <= t < first[f + 1]`.
struct Tasks {
    first: Vec<usize>,
}

impl Tasks {
    /// The tasks of every file not skipped by `cached` (a skipped file has none).
    fn new(files: &FileList, cached: Option<&Cached>) -> Self {
        let mut first = Vec::with_capacity(files.len() + 1);
        let mut total = 0usize;
        for (i, (_, size)) in files.iter().enumerate() {
            first.push(total);
            if cached.is_some_and(|c| c.skip[i]) {
                continue;
            }
            total += usize::try_from(chunk_count(size)).unwrap_or(usize::MAX);
        }
        first.push(total);
        Self { first }
    }

    fn total(&self) -> usize {
        self.first.last().copied().unwrap_or(0)
    }

    /// `(file, chunk)` of task `t < total()`.
    fn locate(&self, t: usize) -> (usize, u64) {
        let file = self.first.partition_point(|&x| x <= t).saturating_sub(1);
        (file, (t - self.first[file]) as u64)
    }

    fn count(&self, file: usize) -> usize {
        self.first[file + 1] - self.first[file]
    }
}

fn hash_all(
    base: &Path,
    files: &Arc<FileList>,
    cached: Option<&Cached>,
    config: JobConfig,
    threads: usize,
    ctx: &Coord<'_>,
    out: &Sender<Msg>,
) -> Result<(), ScanError> {
    let cancel = ctx.cancel;
    let tasks = Tasks::new(files, cached);
    let next = AtomicUsize::new(0);
    let (tx, rx) = mpsc::channel::<Results>();
    let workers = threads.min(tasks.total()).max(1);
    thread::scope(|s| {
        for i in 0..workers {
            let tx = tx.clone();
            let (tasks, next) = (&tasks, &next);
            let spawned = thread::Builder::new()
                .name(format!("roost-hash-{i}"))
                .spawn_scoped(s, move || {
                    let work = Work {
                        base,
                        files,
                        tasks,
                        next,
                        config,
                    };
                    hash_worker(&work, ctx, &tx);
                });
            if let Err(e) = spawned {
                cancel.store(true, Ordering::Relaxed);
                return Err(ScanError::Internal(format!(
                    "cannot start a hash thread: {e}"
                )));
            }
        }
        drop(tx);
        let result = collect(files, &tasks, cached, &rx, cancel, out);
        if result.is_err() {
            cancel.store(true, Ordering::Relaxed);
        }
        result
    })
}

struct Work<'a> {
    base: &'a Path,
    files: &'a FileList,
    tasks: &'a Tasks,
    next: &'a AtomicUsize,
    config: JobConfig,
}

fn hash_worker(work: &Work<'_>, ctx: &Coord<'_>, tx: &Sender<Results>) {
    let Work {
        base,
        files,
        tasks,
        next,
        config,
    } = *work;
    let cancel = ctx.cancel;
    let mut reader = ChunkReader::new(config.mode, config.piece);
    let mut dir: Option<(String, platform::DirHandle)> = None;
    let mut group = Vec::with_capacity(WORKER_GROUP);
    let mut group_bytes = 0u64;
    let total = tasks.total();
    loop {
        if cancel.load(Ordering::Relaxed) {
            return;
        }
        let t = next.fetch_add(1, Ordering::Relaxed);
        if t >= total {
            break;
        }
        let (fi, ci) = tasks.locate(t);
        let size = files.size(fi);
        let len = chunk_len(size, ci);
        let len = usize::try_from(len).unwrap_or(usize::MAX);
        let offset = ci * CHUNK_SIZE;
        if ci == 0 {
            ctx.files_read.fetch_add(1, Ordering::Relaxed);
        }
        match hash_task(&mut reader, &mut dir, base, files.rel(fi), offset, len) {
            Ok(d) => group.push((t, d)),
            Err(e) => {
                let _ = tx.send(Err(e));
                return;
            }
        }
        group_bytes += len as u64;
        if group.len() >= WORKER_GROUP || group_bytes >= CHUNK_SIZE {
            if tx.send(Ok(std::mem::take(&mut group))).is_err() {
                return;
            }
            group.reserve(WORKER_GROUP);
            group_bytes = 0;
        }
    }
    if !group.is_empty() {
        let _ = tx.send(Ok(group));
    }
}

/// Hashes one chunk of `rel`, opening it by name in its directory, whose handle is kept in
/// `dir` for the next file (files of one directory are neighbours in manifest order).
fn hash_task(
    reader: &mut ChunkReader,
    dir: &mut Option<(String, platform::DirHandle)>,
    base: &Path,
    rel: &str,
    offset: u64,
    len: usize,
) -> Result<[u8; 32], ScanError> {
    if rel.is_empty() {
        return reader.hash(base, offset, len);
    }
    let (dir_rel, name) = rel.rsplit_once('/').unwrap_or(("", rel));
    if dir.as_ref().map(|(d, _)| d.as_str()) != Some(dir_rel) {
        *dir = platform::open_dir(&abs_path(base, dir_rel))
            .ok()
            .map(|h| (dir_rel.to_owned(), h));
    }
    let Some((_, handle)) = dir.as_ref() else {
        // The directory did not open: the file's own open reports the error with its path.
        return reader.hash(&abs_path(base, rel), offset, len);
    };
    let file =
        platform::open_in(handle, name).map_err(|e| ScanError::io(abs_path(base, rel), e))?;
    reader
        .hash_open(&file, offset, len)
        .map_err(|f| f.at(abs_path(base, rel), offset, len))
}

/// Collects digests and sends finished files in manifest order. Only the digests of tasks past
/// the first unfinished file are held (`window`), so memory does not grow with the tree.
fn collect(
    files: &Arc<FileList>,
    tasks: &Tasks,
    cached: Option<&Cached>,
    rx: &Receiver<Results>,
    cancel: &AtomicBool,
    out: &Sender<Msg>,
) -> Result<(), ScanError> {
    let n = files.len();
    let mut window: VecDeque<Option<[u8; 32]>> = VecDeque::new();
    let mut window_base = 0usize; // task index of window[0]
    let mut frontier = 0usize; // first file not yet moved to `ready`
    let mut batch_start = 0usize;
    let mut ready: Vec<[u8; 32]> = Vec::new();
    let mut deadline: Option<Instant> = None;
    let mut cached_at = 0usize; // next digest of `cached`
    loop {
        // Move every finished file at the front of the window to the batch.
        while frontier < n {
            let count = tasks.count(frontier);
            if window.len() < count || window.iter().take(count).any(Option::is_none) {
                break;
            }
            if let Some(c) = cached.filter(|c| c.skip[frontier]) {
                let k = usize::try_from(chunk_count(files.size(frontier))).unwrap_or(usize::MAX);
                ready.extend_from_slice(&c.digests[cached_at..cached_at + k]);
                cached_at += k;
            }
            ready.extend(window.drain(..count).flatten());
            window_base += count;
            frontier += 1;
            deadline.get_or_insert_with(|| Instant::now() + FLUSH_INTERVAL);
        }
        let due = deadline.is_some_and(|d| Instant::now() >= d);
        if frontier > batch_start && (frontier == n || frontier - batch_start >= FLUSH_FILES || due)
        {
            let batch = Batch {
                files: Arc::clone(files),
                start: batch_start,
                end: frontier,
                digests: std::mem::take(&mut ready),
            };
            out.send(Msg::Batch(batch))
                .map_err(|_| ScanError::Cancelled)?;
            batch_start = frontier;
            deadline = None;
        }
        if frontier == n {
            return Ok(());
        }
        let wait = deadline.map_or(Duration::from_millis(100), |d| {
            d.saturating_duration_since(Instant::now())
        });
        match rx.recv_timeout(wait) {
            Ok(Ok(results)) => {
                for (t, d) in results {
                    let i = t - window_base;
                    if window.len() <= i {
                        window.resize(i + 1, None);
                    }
                    window[i] = Some(d);
                }
            }
            Ok(Err(e)) => return Err(e),
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => {
                return Err(if cancel.load(Ordering::Relaxed) {
                    ScanError::Cancelled
                } else {
                    ScanError::Internal("a hash thread stopped unexpectedly".to_owned())
                });
            }
        }
        if cancel.load(Ordering::Relaxed) {
            return Err(ScanError::Cancelled);
        }
    }
}

/// Reads and hashes every `(path, offset, len)` on `threads` workers (0: one per core), nothing
/// else: the read + hash ceiling that a scan is measured against, and a bulk verify.
pub fn hash_chunks(
    chunks: &[(PathBuf, u64, usize)],
    config: JobConfig,
) -> Result<Vec<[u8; 32]>, ScanError> {
    let next = AtomicUsize::new(0);
    let workers = config.thread_count().min(chunks.len()).max(1);
    let parts: Vec<Results> = thread::scope(|s| {
        let handles: Vec<_> = (0..workers)
            .map(|_| {
                s.spawn(|| {
                    let mut reader = ChunkReader::new(config.mode, config.piece);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hash::to_hex;
    use sha2::{Digest, Sha256};
    use std::fs;

    fn tmp(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("roost-job-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(&d).unwrap();
        fs::canonicalize(&d).unwrap()
    }

    fn oracle(data: &[u8]) -> Vec<String> {
        data.chunks(CHUNK_SIZE as usize)
            .map(|c| to_hex(&Sha256::digest(c).into()))
            .collect()
    }

    #[test]
    fn hashes_a_tree_in_manifest_order() {
        let root = tmp("tree");
        let big: Vec<u8> = (0..(9 * 1024 * 1024 + 3))
            .map(|i: u32| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
            .collect();
        fs::create_dir_all(root.join("b")).unwrap();
        fs::write(root.join("b/big"), &big).unwrap();
        fs::write(root.join("a.txt"), b"hello").unwrap();
        fs::write(root.join("empty"), b"").unwrap();
        for mode in [ReadMode::Buffer, ReadMode::Mmap] {
            let matcher = IgnoreMatcher::new::<&str>(&[], true).unwrap();
            let config = JobConfig {
                threads: 3,
                mode,
                piece: DEFAULT_PIECE,
            };
            let job = ScanJob::start(
                Source::Tree {
                    root: root.clone(),
                    matcher,
                },
                config,
            )
            .unwrap();
            let got = job.run_to_end().unwrap();
            let names: Vec<&str> = got.iter().map(|(r, _, _)| r.as_str()).collect();
            assert_eq!(names, ["a.txt", "b/big", "empty"]);
            let hex: Vec<Vec<String>> = got
                .iter()
                .map(|(_, _, d)| d.iter().map(to_hex).collect())
                .collect();
            assert_eq!(hex[0], oracle(b"hello"));
            assert_eq!(hex[1], oracle(&big));
            assert_eq!(hex[1].len(), 3);
            assert!(hex[2].is_empty());
        }
        let job = ScanJob::start(
            Source::File {
                path: root.join("b/big"),
            },
            JobConfig::default(),
        )
        .unwrap();
        let got = job.run_to_end().unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].1, big.len() as u64);
        fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn cached_files_are_not_read() {
        let root = tmp("cached");
        let big: Vec<u8> = (0..(5 * 1024 * 1024))
            .map(|i: u32| (i % 251) as u8)
            .collect();
        fs::write(root.join("a"), b"aaa").unwrap();
        fs::write(root.join("b"), &big).unwrap();
        fs::write(root.join("c"), b"ccc").unwrap();
        let matcher = IgnoreMatcher::new::<&str>(&[], true).unwrap();
        let source = Source::Tree {
            root: root.clone(),
            matcher,
        };
        let job = ScanJob::start(source, JobConfig::default()).unwrap();
        while job.wait_walk(Duration::from_millis(100)).unwrap().is_none() {}
        let files = job.files().unwrap();
        assert_eq!(files.len(), 3);
        assert_ne!(files.stamp(1), platform::Stamp::default());
        // "b" (two chunks) is known, with made-up digests: they must come back as given.
        let cached = Cached {
            skip: vec![false, true, false],
            digests: vec![[7u8; 32], [9u8; 32]],
        };
        let bad = Cached {
            skip: vec![false, true, false],
            digests: vec![[7u8; 32]],
        };
        assert!(job.start_hashing(Some(bad)).is_err());
        job.start_hashing(Some(cached)).unwrap();
        let mut got = Vec::new();
        loop {
            match job.next_batch(Duration::from_secs(5)).unwrap() {
                Next::Batch(b) => {
                    got.extend(b.iter().map(|(r, s, d)| (r.to_owned(), s, d.to_vec())))
                }
                Next::Pending => {}
                Next::Done => break,
            }
        }
        assert_eq!(job.files_read(), 2);
        assert_eq!(got[1].2, vec![[7u8; 32], [9u8; 32]]);
        assert_eq!(
            got[0].2.iter().map(to_hex).collect::<Vec<_>>(),
            oracle(b"aaa")
        );
        assert_eq!(
            got[2].2.iter().map(to_hex).collect::<Vec<_>>(),
            oracle(b"ccc")
        );
        fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn cancel_stops_a_job() {
        let root = tmp("cancel");
        fs::write(root.join("f"), vec![1u8; 3 * CHUNK_SIZE as usize]).unwrap();
        let matcher = IgnoreMatcher::new::<&str>(&[], true).unwrap();
        let job = ScanJob::start(
            Source::Tree {
                root: root.clone(),
                matcher,
            },
            JobConfig::default(),
        )
        .unwrap();
        while job.wait_walk(Duration::from_millis(100)).unwrap().is_none() {}
        job.cancel();
        job.start_hashing(None).unwrap();
        let r = job.next_batch(Duration::from_secs(5));
        assert!(matches!(r, Err(ScanError::Cancelled)), "{r:?}");
        fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn missing_file_is_an_io_error_with_its_path() {
        let root = tmp("missing");
        let job = ScanJob::start(
            Source::File {
                path: root.join("nope"),
            },
            JobConfig::default(),
        )
        .unwrap();
        match job.wait_walk(Duration::from_secs(5)) {
            Err(ScanError::Io { path, err }) => {
                assert_eq!(path, root.join("nope"));
                assert_eq!(err.kind(), std::io::ErrorKind::NotFound);
            }
            other => panic!("{other:?}"),
        }
        fs::remove_dir_all(&root).unwrap();
    }
}
