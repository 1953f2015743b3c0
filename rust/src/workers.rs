//! The hash workers of a job: every chunk of every file is one task, taken in manifest order.
//!
//! Hashing is split by chunk, not by file, so one huge file still uses every core. Each open
//! proves it got the file the walk saw: a name opened in its directory without following a
//! link (unless the walk reached the file through one), then the handle's identity compared
//! with the walk's (`platform::is_same`); another file is `ScanError::Swapped`.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Sender};
use std::sync::Arc;
use std::thread;

use crate::collect::collect;
use crate::error::ScanError;
use crate::hash::{chunk_count, chunk_len, ChunkReader, CHUNK_SIZE};
use crate::hold::{Buffer, Hold};
use crate::job::{Cached, JobConfig, Msg};
use crate::platform;
use crate::walk::FileList;

/// Worker results are sent in groups of this many chunks (or after a large chunk).
const WORKER_GROUP: usize = 64;

/// One finished chunk: its task, digest, and its bytes when the job holds them.
pub(crate) type Done = (usize, [u8; 32], Option<Buffer>);

/// A worker's finished chunks, or the error that stopped it.
pub(crate) type Results = Result<Vec<Done>, ScanError>;

/// The absolute path of `rel` under `base` (`base` itself for the empty path).
pub(crate) fn abs_path(base: &Path, rel: &str) -> PathBuf {
    let mut p = base.to_path_buf();
    if !rel.is_empty() {
        for part in rel.split('/') {
            p.push(part);
        }
    }
    p
}

/// Chunk tasks in manifest order: task `t` is chunk `t - first[f]` of the file `f` with
/// `first[f] <= t < first[f + 1]`.
pub(crate) struct Tasks {
    first: Vec<usize>,
}

impl Tasks {
    /// The tasks of every file not skipped by `cached` (a skipped file has none).
    pub(crate) fn new(files: &FileList, cached: Option<&Cached>) -> Self {
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

    pub(crate) fn total(&self) -> usize {
        self.first.last().copied().unwrap_or(0)
    }

    /// `(file, chunk)` of task `t < total()`.
    pub(crate) fn locate(&self, t: usize) -> (usize, u64) {
        let file = self.first.partition_point(|&x| x <= t).saturating_sub(1);
        (file, (t - self.first[file]) as u64)
    }

    pub(crate) fn count(&self, file: usize) -> usize {
        self.first[file + 1] - self.first[file]
    }
}

/// What the coordinator shares with the workers.
pub(crate) struct Coord<'a> {
    pub cancel: &'a AtomicBool,
    pub files_read: &'a AtomicUsize,
}

/// Hashes every task of `files` on `threads` workers, streaming finished files to `out`.
/// With `hold`, each task waits for its granted buffer and its bytes go out with its digest.
#[allow(clippy::too_many_arguments)]
pub(crate) fn hash_all(
    base: &Path,
    files: &Arc<FileList>,
    cached: Option<&Cached>,
    hold: Option<&Hold>,
    config: JobConfig,
    threads: usize,
    ctx: &Coord<'_>,
    out: &Sender<Msg>,
) -> Result<(), ScanError> {
    let cancel = ctx.cancel;
    let own;
    let tasks = match hold {
        Some(h) => h.tasks(),
        None => {
            own = Tasks::new(files, cached);
            &own
        }
    };
    let next = AtomicUsize::new(0);
    let (tx, rx) = mpsc::channel::<Results>();
    let workers = threads.min(tasks.total()).max(1);
    thread::scope(|s| {
        for i in 0..workers {
            let tx = tx.clone();
            let next = &next;
            let spawned = thread::Builder::new()
                .name(format!("roost-hash-{i}"))
                .spawn_scoped(s, move || {
                    let work = Work {
                        base,
                        files,
                        tasks,
                        next,
                        hold,
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
        let result = collect(files, tasks, cached, &rx, cancel, out);
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
    hold: Option<&'a Hold>,
    config: JobConfig,
}

fn hash_worker(work: &Work<'_>, ctx: &Coord<'_>, tx: &Sender<Results>) {
    let Work {
        base,
        files,
        tasks,
        next,
        hold,
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
        let (t, mut buffer) = match hold {
            // Before waiting for a grant, hand over the bytes held in `group`: the budget they
            // use may be what the grant waits for.
            Some(h) => match h.take(cancel, || flush(tx, &mut group, &mut group_bytes)) {
                Some((t, b)) => (t, Some(b)),
                None => break,
            },
            None => (next.fetch_add(1, Ordering::Relaxed), None),
        };
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
        let target = Target {
            base,
            rel: files.rel(fi),
            id: files.stamp(fi).id(),
            linked: files.linked(fi),
        };
        let dest = buffer.as_mut().map(Buffer::as_mut_slice);
        match hash_task(&mut reader, &mut dir, &target, offset, len, dest) {
            Ok(d) => group.push((t, d, buffer)),
            Err(e) => {
                let _ = tx.send(Err(e));
                return;
            }
        }
        group_bytes += len as u64;
        if (group.len() >= WORKER_GROUP || group_bytes >= CHUNK_SIZE)
            && !flush(tx, &mut group, &mut group_bytes)
        {
            return;
        }
    }
    flush(tx, &mut group, &mut group_bytes);
}

/// Sends the worker's finished chunks, if any; false when the collector is gone.
fn flush(tx: &Sender<Results>, group: &mut Vec<Done>, group_bytes: &mut u64) -> bool {
    *group_bytes = 0;
    if group.is_empty() {
        return true;
    }
    let sent = tx.send(Ok(std::mem::take(group))).is_ok();
    group.reserve(WORKER_GROUP);
    sent
}

/// The file a task reads, as the walk saw it.
struct Target<'a> {
    base: &'a Path,
    rel: &'a str,
    id: Option<platform::FileId>,
    linked: bool,
}

/// Hashes one chunk of `target`, opening it by name in its directory, whose handle is kept in
/// `dir` for the next file (files of one directory are neighbours in manifest order). With
/// `dest` (exactly `len` bytes), the chunk is read into it and hashed there.
fn hash_task(
    reader: &mut ChunkReader,
    dir: &mut Option<(String, platform::DirHandle)>,
    target: &Target<'_>,
    offset: u64,
    len: usize,
    dest: Option<&mut [u8]>,
) -> Result<[u8; 32], ScanError> {
    let Target {
        base,
        rel,
        id,
        linked,
    } = *target;
    let path = || abs_path(base, rel);
    let file = if rel.is_empty() {
        platform::open_read(base).map_err(|e| ScanError::io(base, e))?
    } else {
        let (dir_rel, name) = rel.rsplit_once('/').unwrap_or(("", rel));
        if dir.as_ref().map(|(d, _)| d.as_str()) != Some(dir_rel) {
            *dir = platform::open_dir(&abs_path(base, dir_rel))
                .ok()
                .map(|h| (dir_rel.to_owned(), h));
        }
        match dir.as_ref() {
            Some((_, handle)) => platform::open_in(handle, name, linked),
            // The directory did not open: the file's own open reports the error with its path.
            None => platform::open_read(&path()),
        }
        .map_err(|e| opened_error(path(), e))?
    };
    if !platform::is_same(&file, id).map_err(|e| ScanError::io(path(), e))? {
        return Err(ScanError::Swapped { path: path() });
    }
    match dest {
        Some(dest) => reader.read_hash_into(&file, offset, dest),
        None => reader.hash_open(&file, offset, len),
    }
    .map_err(|f| f.at(path(), offset, len))
}

/// An open that failed because the name is a link now (`O_NOFOLLOW`) is a swap, not an I/O error.
fn opened_error(path: PathBuf, err: std::io::Error) -> ScanError {
    #[cfg(unix)]
    if err.raw_os_error() == Some(libc::ELOOP) {
        return ScanError::Swapped { path };
    }
    ScanError::io(path, err)
}
