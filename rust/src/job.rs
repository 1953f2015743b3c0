//! A scan job: walk (or one file), then hash every chunk in parallel, streaming results.
//!
//! This is the job's API and its coordinator thread. The coordinator walks the tree, sorts the
//! files by path and reports the totals (`wait_walk`), what the walk skipped (`skipped`) and the
//! patterns that matched nothing (`unmatched`). It then waits for `start_hashing`, so that the
//! caller can emit its "discover" event between the walk and the first read. The workers
//! (`workers.rs`) hash every chunk in parallel; the collector (`collect.rs`) hands out batches
//! of finished files in manifest order (`next_batch`). `cancel` (or dropping the job) stops the
//! walk and the workers within one chunk.
//!
//! The hash cache: after the walk, the caller reads each file's stat fingerprint (`files`) and
//! may pass, with `start_hashing`, the files it already knows (`Cached`): those are never opened,
//! their digests are emitted in their place in manifest order. `files_read` counts the files the
//! job opened.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender, SyncSender};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread;
use std::time::Duration;

use crate::error::ScanError;
use crate::hash::{chunk_count, thread_count, ReadMode, DEFAULT_PIECE};
use crate::hold::{Buffer, Hold};
use crate::pattern::IgnoreMatcher;
use crate::platform;
use crate::walk::{walk, FileList, Skip};
use crate::workers::{hash_all, Coord, Tasks};

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
        thread_count(self.threads)
    }
}

/// What a job scans.
pub enum Source {
    /// A directory tree: `root` must be absolute and canonical.
    Tree {
        root: PathBuf,
        matcher: Arc<IgnoreMatcher>,
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

/// Files `start..end` of `files` (manifest order), with all their chunk digests in order, and,
/// when the job holds bytes, the chunks read since the last batch with their bytes (in no
/// particular order, and possibly of files not in this batch yet: see `collect`).
#[derive(Debug)]
pub struct Batch {
    pub files: Arc<FileList>,
    pub start: usize,
    pub end: usize,
    pub digests: Vec<[u8; 32]>,
    pub held: Vec<([u8; 32], Buffer)>,
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

pub(crate) enum Msg {
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

/// The entries the walk left out, sorted by path.
pub type Skipped = Arc<Vec<(String, Skip)>>;

type Walked = Result<(Summary, Arc<FileList>, Skipped), ScanError>;

enum WalkState {
    Waiting(Receiver<Walked>),
    Ready(Summary, Arc<FileList>, Skipped),
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

/// What `start_hashing` hands the coordinator.
struct Go {
    cached: Option<Cached>,
    hold: Option<Arc<Hold>>,
}

pub struct ScanJob {
    cancel: Arc<AtomicBool>,
    matcher: Option<Arc<IgnoreMatcher>>,
    walk: Mutex<WalkState>,
    go: Mutex<Option<SyncSender<Go>>>,
    hold: Mutex<Option<Arc<Hold>>>,
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
        let matcher = match &source {
            Source::Tree { matcher, .. } => Some(Arc::clone(matcher)),
            Source::File { .. } => None,
        };
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
            matcher,
            walk: Mutex::new(WalkState::Waiting(walk_rx)),
            go: Mutex::new(Some(go_tx)),
            hold: Mutex::new(None),
            batches: Mutex::new(batch_rx),
            done: AtomicBool::new(false),
            files_read,
        })
    }

    /// The files found by the walk (manifest order, with their stat fingerprints), once
    /// `wait_walk` has returned them.
    pub fn files(&self) -> Option<Arc<FileList>> {
        match &*lock(&self.walk) {
            WalkState::Ready(_, files, _) => Some(Arc::clone(files)),
            _ => None,
        }
    }

    /// The entries the walk left out (sorted by path), once `wait_walk` has returned.
    pub fn skipped(&self) -> Option<Skipped> {
        match &*lock(&self.walk) {
            WalkState::Ready(_, _, skipped) => Some(Arc::clone(skipped)),
            _ => None,
        }
    }

    /// The given ignore patterns that matched nothing, once `wait_walk` has returned (a file
    /// job has none).
    pub fn unmatched(&self) -> Vec<String> {
        match (&self.matcher, self.files()) {
            (Some(m), Some(_)) => m.unmatched(),
            _ => Vec::new(),
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
            WalkState::Ready(s, _, _) => return Ok(Some(*s)),
            WalkState::Failed => {
                return Err(ScanError::Internal("the walk already failed".to_owned()))
            }
            WalkState::Waiting(rx) => rx.recv_timeout(timeout),
        };
        match outcome {
            Ok(Ok((s, files, skipped))) => {
                *state = WalkState::Ready(s, files, skipped);
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
    /// skipped files): anything else returns `false` and nothing starts. With `hold`, every
    /// chunk read waits for a buffer granted with `grant`, and batches carry the bytes.
    pub fn start_hashing(&self, cached: Option<Cached>, hold: bool) -> Result<bool, ScanError> {
        let files = self
            .files()
            .ok_or_else(|| ScanError::Internal("start_hashing before the walk".to_owned()))?;
        if let Some(c) = &cached {
            let want: u64 = (0..files.len())
                .filter(|&i| c.skip.get(i).copied().unwrap_or(false))
                .map(|i| chunk_count(files.size(i)))
                .sum();
            if c.skip.len() != files.len() || want != c.digests.len() as u64 {
                return Ok(false);
            }
        }
        if let Some(tx) = lock(&self.go).take() {
            let hold = hold.then(|| {
                Arc::new(Hold::new(
                    Arc::clone(&files),
                    Tasks::new(&files, cached.as_ref()),
                ))
            });
            lock(&self.hold).clone_from(&hold);
            // The coordinator may be gone already (cancelled or failed): `next_batch` says so.
            let _ = tx.send(Go { cached, hold });
        }
        Ok(true)
    }

    /// Grants buffers to the next chunk reads while they fit in `budget` bytes (see
    /// `Hold::grant`); 0 when the job does not hold bytes or every read is granted.
    pub fn grant<E>(
        &self,
        budget: usize,
        alloc: impl FnMut(usize) -> Result<Buffer, E>,
    ) -> Result<usize, E> {
        let hold = lock(&self.hold).clone();
        match hold {
            Some(h) => h.grant(budget, alloc),
            None => Ok(0),
        }
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
        self.start_hashing(None, false)?;
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

fn coordinator(
    source: Source,
    config: JobConfig,
    ctx: &Coord<'_>,
    walk_tx: &SyncSender<Walked>,
    go_rx: &Receiver<Go>,
    out: &Sender<Msg>,
) {
    let cancel = ctx.cancel;
    let threads = config.thread_count();
    let (base, found) = match source {
        Source::Tree { root, matcher } => {
            let found = walk(&root, &matcher, threads, cancel).map(|mut walked| {
                walked.files.sort();
                (walked.files, walked.skipped)
            });
            (root, found)
        }
        Source::File { path } => {
            let found = std::fs::metadata(&path)
                .map(|m| {
                    let mut list = FileList::default();
                    // One path cannot exceed 4 GiB; the open follows a link, as `metadata` did.
                    let _ = list.push_entry("", m.len(), platform::stamp(&path, &m), true);
                    (list, Vec::new())
                })
                .map_err(|e| ScanError::io(&path, e));
            (path, found)
        }
    };
    let (files, skipped) = match found {
        Ok((f, s)) => (Arc::new(f), Arc::new(s)),
        Err(e) => {
            let _ = walk_tx.send(Err(e));
            return;
        }
    };
    let summary = Summary {
        files: files.len(),
        bytes: files.iter().map(|(_, size)| size).sum(),
    };
    if walk_tx
        .send(Ok((summary, Arc::clone(&files), skipped)))
        .is_err()
    {
        return;
    }
    let go = loop {
        match go_rx.recv_timeout(Duration::from_millis(50)) {
            Ok(go) => break go,
            Err(RecvTimeoutError::Timeout) if !cancel.load(Ordering::Relaxed) => {}
            Err(_) => return,
        }
    };
    let (cached, hold) = (go.cached.as_ref(), go.hold.as_deref());
    let msg = match hash_all(&base, &files, cached, hold, config, threads, ctx, out) {
        Ok(()) => Msg::Done,
        Err(e) => {
            cancel.store(true, Ordering::Relaxed);
            Msg::Error(e)
        }
    };
    let _ = out.send(msg);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hash::{to_hex, CHUNK_SIZE};
    use sha2::{Digest, Sha256};
    use std::fs;
    use std::path::Path;

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

    /// `len` bytes that differ from chunk to chunk.
    fn pattern(len: u32) -> Vec<u8> {
        (0..len)
            .map(|i: u32| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
            .collect()
    }

    /// A job over the tree at `root`, default ignores and config, its walk done.
    fn walked(root: &Path) -> ScanJob {
        let matcher = Arc::new(IgnoreMatcher::new::<&str>(&[], true).unwrap());
        let source = Source::Tree {
            root: root.to_path_buf(),
            matcher,
        };
        let job = ScanJob::start(source, JobConfig::default()).unwrap();
        while job.wait_walk(Duration::from_millis(100)).unwrap().is_none() {}
        job
    }

    #[test]
    fn hashes_a_tree_in_manifest_order() {
        let root = tmp("tree");
        let big = pattern(9 * 1024 * 1024 + 3);
        fs::create_dir_all(root.join("b")).unwrap();
        fs::write(root.join("b/big"), &big).unwrap();
        fs::write(root.join("a.txt"), b"hello").unwrap();
        fs::write(root.join("empty"), b"").unwrap();
        for mode in [ReadMode::Buffer, ReadMode::Mmap] {
            let matcher = Arc::new(IgnoreMatcher::new::<&str>(&[], true).unwrap());
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
        let job = walked(&root);
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
        assert!(!job.start_hashing(Some(bad), false).unwrap());
        assert!(job.start_hashing(Some(cached), false).unwrap());
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
        let job = walked(&root);
        job.cancel();
        assert!(job.start_hashing(None, false).unwrap());
        let r = job.next_batch(Duration::from_secs(5));
        assert!(matches!(r, Err(ScanError::Cancelled)), "{r:?}");
        fs::remove_dir_all(&root).unwrap();
    }

    /// Held bytes: reads wait for grants given in task order, within the budget, and every
    /// chunk's bytes come back with its digest.
    #[test]
    fn held_bytes_follow_the_grants() {
        let root = tmp("held");
        let big = pattern(9 * 1024 * 1024 + 7);
        fs::write(root.join("a"), &big).unwrap();
        fs::write(root.join("b"), b"tiny").unwrap();
        let job = walked(&root);
        assert!(job.start_hashing(None, true).unwrap());
        // nothing granted: nothing is read
        assert!(matches!(
            job.next_batch(Duration::from_millis(200)).unwrap(),
            Next::Pending
        ));
        let alloc = |n: usize| Ok::<_, ()>(Buffer::owned(n));
        // one byte of budget still grants the first read, and only that one; the job then
        // waits for more grants (the big file's 3 chunks do not fit in one)
        assert_eq!(job.grant(1, alloc).unwrap(), CHUNK_SIZE as usize);
        let mut files: Vec<(String, Vec<[u8; 32]>)> = Vec::new();
        let mut held = std::collections::HashMap::new();
        let mut granted = CHUNK_SIZE as usize;
        loop {
            match job.next_batch(Duration::from_millis(100)).unwrap() {
                Next::Done => break,
                Next::Pending => {
                    granted += job.grant(usize::MAX, alloc).unwrap();
                }
                Next::Batch(b) => {
                    files.extend(b.iter().map(|(r, _, d)| (r.to_owned(), d.to_vec())));
                    for (d, h) in b.held {
                        let data = h.into_owner().downcast::<Box<[u8]>>().unwrap();
                        assert_eq!(to_hex(&Sha256::digest(&data[..]).into()), to_hex(&d));
                        held.insert(d, data.to_vec());
                    }
                }
            }
        }
        // the big file needs more than the budget: its first chunks come out before it does
        assert_eq!(granted, big.len() + 4);
        let names: Vec<&str> = files.iter().map(|(r, _)| r.as_str()).collect();
        assert_eq!(names, ["a", "b"]);
        let rebuilt: Vec<u8> = files[0].1.iter().flat_map(|d| held[d].clone()).collect();
        assert_eq!(rebuilt, big);
        assert_eq!(held[&files[1].1[0]], b"tiny");
        assert_eq!(held.len(), 4);
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
