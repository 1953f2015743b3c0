//! The parallel directory walk.
//!
//! Worker threads share a stack of directories to read (depth first keeps it small). Each entry:
//! - a name that is not valid UTF-8 stops the walk with an error naming it;
//! - regular files are kept with their size and stat fingerprint (`platform::Stamp`, for the
//!   hash cache: the walk's own `stat`, so a warm scan costs no extra call), unless ignored;
//! - directories are descended unless ignored (a matched directory is pruned);
//! - symlinks are followed when the target exists and resolves inside the root: a file is kept
//!   under the link's path; a directory is queued (see below);
//! - everything else is skipped, never opened, and reported (`Skip`): links leaving the root,
//!   broken links (and link loops), FIFOs, sockets and devices. Ignored entries are not reported.
//!
//! Links to directories are walked after every real directory, one at a time in path order (the
//! smallest path first): the first link to a directory is walked under its own path; a later
//! one, or a link to one of its own ancestors, is reported as `RepeatedDirectory`. So each real
//! directory is walked at most twice (under its path and under one link), a fan-out of links
//! cannot multiply the tree, and the outcome never depends on the order the OS lists entries in
//! or on the threads. `roost.chunker._fallback` follows the same steps.
//!
//! The files are unsorted (the caller sorts them by path); the skipped entries are sorted.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use crate::error::ScanError;
use crate::pattern::IgnoreMatcher;
use crate::platform::{self, FileId, Stamp};

/// The regular files found by a walk: `/`-separated paths relative to the root, and sizes.
///
/// Stored compactly (one text buffer, 16 bytes per file) because trees of 100,000+ small files
/// are the common case: about 40 bytes per file instead of 70 with a `String` each.
#[derive(Debug, Default, Clone)]
pub struct FileList {
    text: String,
    items: Vec<Item>,
}

#[derive(Debug, Clone, Copy)]
struct Item {
    start: u32,
    len: u32,
    size: u64,
    stamp: Stamp,
    /// Listed through a symlink (its open must follow the link; the identity check proves it).
    linked: bool,
}

fn too_many() -> ScanError {
    ScanError::Internal("too many files: their paths exceed 4 GiB".to_owned())
}

impl FileList {
    /// A list of one file.
    #[must_use]
    pub fn single(rel: &str, size: u64) -> Self {
        let mut list = Self::default();
        // One path cannot exceed 4 GiB on any real file system.
        let _ = list.push(rel, size);
        list
    }

    pub fn push(&mut self, rel: &str, size: u64) -> Result<(), ScanError> {
        self.push_stamped(rel, size, Stamp::default())
    }

    /// Adds a file with its stat fingerprint (for the hash cache).
    pub fn push_stamped(&mut self, rel: &str, size: u64, stamp: Stamp) -> Result<(), ScanError> {
        self.push_entry(rel, size, stamp, false)
    }

    /// Adds a file; `linked` when the walk reached it through a symlink.
    pub fn push_entry(
        &mut self,
        rel: &str,
        size: u64,
        stamp: Stamp,
        linked: bool,
    ) -> Result<(), ScanError> {
        let start = u32::try_from(self.text.len()).map_err(|_| too_many())?;
        let len = u32::try_from(rel.len()).map_err(|_| too_many())?;
        start.checked_add(len).ok_or_else(too_many)?;
        self.text.push_str(rel);
        self.items.push(Item {
            start,
            len,
            size,
            stamp,
            linked,
        });
        Ok(())
    }

    /// Moves every file of `other` to the end of this list (`other` keeps its capacity).
    pub fn absorb(&mut self, other: &mut FileList) -> Result<(), ScanError> {
        let base = u32::try_from(self.text.len()).map_err(|_| too_many())?;
        let extra = u32::try_from(other.text.len()).map_err(|_| too_many())?;
        base.checked_add(extra).ok_or_else(too_many)?;
        self.text.push_str(&other.text);
        self.items.extend(other.items.iter().map(|it| Item {
            start: it.start + base,
            ..*it
        }));
        other.text.clear();
        other.items.clear();
        Ok(())
    }

    /// Sorts by path (byte order of UTF-8, which is code point order, like Python's `str`).
    pub fn sort(&mut self) {
        let text = &self.text;
        let key = |it: &Item| &text.as_bytes()[it.start as usize..(it.start + it.len) as usize];
        self.items.sort_unstable_by(|a, b| key(a).cmp(key(b)));
    }

    #[must_use]
    pub fn len(&self) -> usize {
        self.items.len()
    }

    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// The relative path of file `i` (panics when out of range, like indexing).
    #[must_use]
    pub fn rel(&self, i: usize) -> &str {
        let it = self.items[i];
        &self.text[it.start as usize..(it.start + it.len) as usize]
    }

    #[must_use]
    pub fn size(&self, i: usize) -> u64 {
        self.items[i].size
    }

    /// The stat fingerprint of file `i` recorded by the walk.
    #[must_use]
    pub fn stamp(&self, i: usize) -> Stamp {
        self.items[i].stamp
    }

    /// Whether file `i` was reached through a symlink.
    #[must_use]
    pub fn linked(&self, i: usize) -> bool {
        self.items[i].linked
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, u64)> {
        (0..self.len()).map(|i| (self.rel(i), self.size(i)))
    }
}

/// Why the walk left an entry out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Skip {
    LinkOutsideRoot,
    BrokenLink,
    SpecialFile,
    RepeatedDirectory,
}

impl Skip {
    /// The reason as `roost.chunker.SkipReason` spells it.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::LinkOutsideRoot => "link_outside_root",
            Self::BrokenLink => "broken_link",
            Self::SpecialFile => "special_file",
            Self::RepeatedDirectory => "repeated_directory",
        }
    }
}

/// What a walk found: the files (unsorted) and the skipped entries (sorted by path).
#[derive(Debug, Default)]
pub struct Walked {
    pub files: FileList,
    pub skipped: Vec<(String, Skip)>,
}

/// The chain of directories from the root down to a directory (for cycle detection).
struct Chain {
    id: FileId,
    parent: Option<Arc<Chain>>,
}

impl Chain {
    fn contains(&self, id: &FileId) -> bool {
        let mut node = Some(self);
        while let Some(n) = node {
            if n.id == *id {
                return true;
            }
            node = n.parent.as_deref();
        }
        false
    }
}

struct DirTask {
    abs: PathBuf,
    rel: String,
    chain: Arc<Chain>,
}

/// A link to a directory, decided after the real directories (ordered by its path).
struct LinkTask {
    rel: String,
    /// The link's resolved target: walked instead of the link, which may point elsewhere by then.
    abs: PathBuf,
    /// The chain of the directory holding the link.
    chain: Arc<Chain>,
}

impl PartialEq for LinkTask {
    fn eq(&self, other: &Self) -> bool {
        self.rel == other.rel
    }
}

impl Eq for LinkTask {}

impl PartialOrd for LinkTask {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for LinkTask {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.rel.cmp(&other.rel)
    }
}

#[derive(Default)]
struct Queue {
    tasks: Vec<DirTask>,
    active: usize,
    failed: Option<ScanError>,
    finished: bool,
}

/// What a worker found in one directory, merged under the locks at once.
#[derive(Default)]
struct Found {
    files: FileList,
    skipped: Vec<(String, Skip)>,
    links: Vec<LinkTask>,
    subdirs: Vec<DirTask>,
}

struct Ctx<'a> {
    root: &'a Path,
    matcher: &'a IgnoreMatcher,
    cancel: &'a AtomicBool,
    queue: Mutex<Queue>,
    wake: Condvar,
    /// Every file found so far: each worker adds a directory's files at once. One shared list
    /// (rather than one per worker, merged at the end) keeps the peak memory at one copy.
    files: Mutex<FileList>,
    skipped: Mutex<Vec<(String, Skip)>>,
    links: Mutex<Vec<LinkTask>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn join_rel(parent: &str, name: &str) -> String {
    let mut s = String::with_capacity(parent.len() + 1 + name.len());
    join_into(&mut s, parent, name);
    s
}

fn join_into(buf: &mut String, parent: &str, name: &str) {
    buf.clear();
    if !parent.is_empty() {
        buf.push_str(parent);
        buf.push('/');
    }
    buf.push_str(name);
}

/// Walks `root` (an absolute, canonical directory path) with `threads` workers.
pub fn walk(
    root: &Path,
    matcher: &IgnoreMatcher,
    threads: usize,
    cancel: &AtomicBool,
) -> Result<Walked, ScanError> {
    let meta = fs::metadata(root).map_err(|e| ScanError::io(root, e))?;
    let id = platform::file_id(root, &meta).map_err(|e| ScanError::io(root, e))?;
    let ctx = Ctx {
        root,
        matcher,
        cancel,
        queue: Mutex::new(Queue::default()),
        wake: Condvar::new(),
        files: Mutex::new(FileList::default()),
        skipped: Mutex::new(Vec::new()),
        links: Mutex::new(Vec::new()),
    };
    let threads = threads.max(1);
    let first = DirTask {
        abs: root.to_path_buf(),
        rel: String::new(),
        chain: Arc::new(Chain { id, parent: None }),
    };
    run_workers(&ctx, first, threads)?;
    let mut heap: BinaryHeap<Reverse<LinkTask>> = std::mem::take(&mut *lock(&ctx.links))
        .into_iter()
        .map(Reverse)
        .collect();
    let mut expanded: HashSet<FileId> = HashSet::new();
    while let Some(Reverse(link)) = heap.pop() {
        let target = fs::metadata(&link.abs)
            .ok()
            .and_then(|m| platform::file_id(&link.abs, &m).ok());
        let Some(id) = target else {
            lock(&ctx.skipped).push((link.rel, Skip::BrokenLink));
            continue;
        };
        if link.chain.contains(&id) || !expanded.insert(id) {
            lock(&ctx.skipped).push((link.rel, Skip::RepeatedDirectory));
            continue;
        }
        let task = DirTask {
            abs: link.abs,
            rel: link.rel,
            chain: Arc::new(Chain {
                id,
                parent: Some(link.chain),
            }),
        };
        run_workers(&ctx, task, threads)?;
        heap.extend(
            std::mem::take(&mut *lock(&ctx.links))
                .into_iter()
                .map(Reverse),
        );
    }
    let mut skipped = ctx
        .skipped
        .into_inner()
        .unwrap_or_else(PoisonError::into_inner);
    skipped.sort();
    let files = ctx
        .files
        .into_inner()
        .unwrap_or_else(PoisonError::into_inner);
    Ok(Walked { files, skipped })
}

/// Walks the real directories under `first` on `threads` workers; links to directories are left
/// in `ctx.links`.
fn run_workers(ctx: &Ctx<'_>, first: DirTask, threads: usize) -> Result<(), ScanError> {
    *lock(&ctx.queue) = Queue {
        tasks: vec![first],
        ..Queue::default()
    };
    let spawned: Result<(), ScanError> = std::thread::scope(|s| {
        let mut handles = Vec::with_capacity(threads);
        for i in 0..threads {
            let builder = std::thread::Builder::new().name(format!("roost-walk-{i}"));
            match builder.spawn_scoped(s, || worker(ctx)) {
                Ok(h) => handles.push(h),
                Err(e) => {
                    let mut q = lock(&ctx.queue);
                    q.failed.get_or_insert(ScanError::Internal(format!(
                        "cannot start a walk thread: {e}"
                    )));
                    ctx.wake.notify_all();
                    break;
                }
            }
        }
        let mut result = Ok(());
        for h in handles {
            if h.join().is_err() {
                result = Err(ScanError::Internal("a walk thread panicked".to_owned()));
            }
        }
        result
    });
    spawned?;
    if let Some(e) = lock(&ctx.queue).failed.take() {
        return Err(e);
    }
    if ctx.cancel.load(Ordering::Relaxed) {
        return Err(ScanError::Cancelled);
    }
    Ok(())
}

fn worker(ctx: &Ctx<'_>) {
    let mut found = Found::default();
    let mut buf = String::new();
    loop {
        let task = {
            let mut q = lock(&ctx.queue);
            loop {
                if q.failed.is_some() || q.finished || ctx.cancel.load(Ordering::Relaxed) {
                    ctx.wake.notify_all();
                    return;
                }
                if let Some(t) = q.tasks.pop() {
                    q.active += 1;
                    break t;
                }
                if q.active == 0 {
                    q.finished = true;
                    ctx.wake.notify_all();
                    return;
                }
                q = ctx
                    .wake
                    .wait_timeout(q, Duration::from_millis(50))
                    .unwrap_or_else(PoisonError::into_inner)
                    .0;
            }
        };
        let res = read_dir(ctx, &task, &mut found, &mut buf).and_then(|()| {
            if !found.skipped.is_empty() {
                lock(&ctx.skipped).append(&mut found.skipped);
            }
            if !found.links.is_empty() {
                lock(&ctx.links).append(&mut found.links);
            }
            lock(&ctx.files).absorb(&mut found.files)
        });
        let mut q = lock(&ctx.queue);
        q.active -= 1;
        match res {
            Err(e) => {
                q.failed.get_or_insert(e);
                ctx.wake.notify_all();
                return;
            }
            Ok(()) => {
                let pushed = !found.subdirs.is_empty();
                q.tasks.append(&mut found.subdirs);
                if pushed || q.active == 0 {
                    ctx.wake.notify_all();
                }
            }
        }
    }
}

fn is_not_found(e: &std::io::Error) -> bool {
    e.kind() == std::io::ErrorKind::NotFound
}

fn read_dir(
    ctx: &Ctx<'_>,
    task: &DirTask,
    found: &mut Found,
    rel: &mut String,
) -> Result<(), ScanError> {
    let entries = fs::read_dir(&task.abs).map_err(|e| ScanError::io(&task.abs, e))?;
    for (i, entry) in entries.enumerate() {
        if i % 256 == 255 && ctx.cancel.load(Ordering::Relaxed) {
            return Err(ScanError::Cancelled);
        }
        let entry = entry.map_err(|e| ScanError::io(&task.abs, e))?;
        let name_os = entry.file_name();
        let Some(name) = name_os.to_str() else {
            let bad = join_rel(&task.rel, &platform::escape_name(&name_os));
            return Err(ScanError::NonUtf8 { path: bad });
        };
        join_into(rel, &task.rel, name);
        let rel = rel.as_str();
        let ft = match entry.file_type() {
            Ok(ft) => ft,
            Err(e) if is_not_found(&e) => continue,
            Err(e) => return Err(ScanError::io(entry.path(), e)),
        };
        if ft.is_file() {
            if ctx.matcher.is_ignored(name, rel, false) {
                continue;
            }
            let meta = match entry.metadata() {
                Ok(m) => m,
                Err(e) if is_not_found(&e) => continue,
                Err(e) => return Err(ScanError::io(entry.path(), e)),
            };
            if meta.is_file() {
                let stamp = platform::stamp(&entry.path(), &meta);
                found.files.push_stamped(rel, meta.len(), stamp)?;
            }
        } else if ft.is_dir() {
            if ctx.matcher.is_ignored(name, rel, true) {
                continue;
            }
            let path = entry.path();
            let meta = match fs::symlink_metadata(&path) {
                Ok(m) => m,
                Err(e) if is_not_found(&e) => continue,
                Err(e) => return Err(ScanError::io(path, e)),
            };
            let id = platform::file_id(&path, &meta).map_err(|e| ScanError::io(&path, e))?;
            let chain = Arc::new(Chain {
                id,
                parent: Some(Arc::clone(&task.chain)),
            });
            found.subdirs.push(DirTask {
                abs: path,
                rel: rel.to_owned(),
                chain,
            });
        } else if ft.is_symlink() {
            symlink(ctx, task, entry.path(), name, rel, found)?;
        } else if !ctx.matcher.is_ignored(name, rel, false) {
            // a FIFO, socket or device: never opened
            found.skipped.push((rel.to_owned(), Skip::SpecialFile));
        }
    }
    Ok(())
}

fn symlink(
    ctx: &Ctx<'_>,
    task: &DirTask,
    path: PathBuf,
    name: &str,
    rel: &str,
    found: &mut Found,
) -> Result<(), ScanError> {
    let Ok(meta) = fs::metadata(&path) else {
        // a missing target, a link loop or an unreadable target
        if !ctx.matcher.is_ignored(name, rel, false) {
            found.skipped.push((rel.to_owned(), Skip::BrokenLink));
        }
        return Ok(());
    };
    let is_dir = meta.is_dir();
    if ctx.matcher.is_ignored(name, rel, is_dir) {
        return Ok(());
    }
    let Ok(target) = fs::canonicalize(&path) else {
        found.skipped.push((rel.to_owned(), Skip::BrokenLink));
        return Ok(());
    };
    if !target.starts_with(ctx.root) {
        found.skipped.push((rel.to_owned(), Skip::LinkOutsideRoot));
        return Ok(());
    }
    // The target was stat'ed through the link, then resolved: the link may have been flipped in
    // between. The resolved path holds no link, so its own metadata must show the same file, or
    // the identity recorded could be one outside the root.
    let Ok(resolved) = fs::symlink_metadata(&target) else {
        found.skipped.push((rel.to_owned(), Skip::BrokenLink));
        return Ok(());
    };
    let same = match (
        platform::file_id(&path, &meta),
        platform::file_id(&target, &resolved),
    ) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    };
    if !same {
        return Err(ScanError::Changed {
            path,
            offset: 0,
            reason: "relinked while the folder was walked".to_owned(),
        });
    }
    if is_dir {
        found.links.push(LinkTask {
            rel: rel.to_owned(),
            abs: target,
            chain: Arc::clone(&task.chain),
        });
    } else if !resolved.is_file() {
        found.skipped.push((rel.to_owned(), Skip::SpecialFile));
    } else {
        let stamp = platform::stamp(&target, &resolved);
        found.files.push_entry(rel, resolved.len(), stamp, true)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmp(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("roost-walk-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(&d).unwrap();
        fs::canonicalize(&d).unwrap()
    }

    fn rels(root: &Path, patterns: &[&str]) -> Vec<(String, u64)> {
        let m = IgnoreMatcher::new(patterns, true).unwrap();
        let walked = walk(root, &m, 2, &AtomicBool::new(false)).unwrap();
        let mut v: Vec<(String, u64)> = walked
            .files
            .iter()
            .map(|(r, s)| (r.to_owned(), s))
            .collect();
        v.sort();
        v
    }

    #[test]
    fn file_list_sorts_by_path() {
        let mut a = FileList::default();
        a.push("b", 1).unwrap();
        a.push("a/x", 2).unwrap();
        let mut b = FileList::default();
        b.push("a-b", 3).unwrap();
        b.push("B", 4).unwrap();
        a.absorb(&mut b).unwrap();
        assert!(b.is_empty());
        a.sort();
        let got: Vec<(&str, u64)> = a.iter().collect();
        assert_eq!(got, [("B", 4), ("a-b", 3), ("a/x", 2), ("b", 1)]);
    }

    #[test]
    fn walks_and_ignores() {
        let root = tmp("basic");
        fs::create_dir_all(root.join("a/b")).unwrap();
        fs::create_dir_all(root.join(".git")).unwrap();
        fs::create_dir_all(root.join("skip")).unwrap();
        fs::write(root.join("a/b/x.txt"), b"xx").unwrap();
        fs::write(root.join("a/empty"), b"").unwrap();
        fs::write(root.join("a/t.tmp"), b"t").unwrap();
        fs::write(root.join(".git/HEAD"), b"h").unwrap();
        fs::write(root.join("skip/y"), b"y").unwrap();
        assert_eq!(
            rels(&root, &["*.tmp", "skip/"]),
            vec![("a/b/x.txt".to_owned(), 2), ("a/empty".to_owned(), 0)]
        );
        fs::remove_dir_all(&root).unwrap();
    }

    #[cfg(unix)]
    #[test]
    fn symlinks_inside_outside_broken_and_cycles() {
        use std::os::unix::fs::symlink;
        let root = tmp("links");
        let outside = tmp("links-outside");
        fs::write(outside.join("secret"), b"s").unwrap();
        fs::create_dir_all(root.join("d")).unwrap();
        fs::write(root.join("d/f"), b"f").unwrap();
        symlink(root.join("d/f"), root.join("file-link")).unwrap();
        symlink("d", root.join("dir-link")).unwrap();
        symlink(&outside, root.join("out-link")).unwrap();
        symlink(root.join("nope"), root.join("broken")).unwrap();
        symlink("..", root.join("d/up")).unwrap();
        symlink(".", root.join("d/self")).unwrap();
        let got: Vec<String> = rels(&root, &[]).into_iter().map(|(r, _)| r).collect();
        assert_eq!(got, vec!["d/f", "dir-link/f", "file-link"]);
        let m = IgnoreMatcher::new::<&str>(&[], true).unwrap();
        let walked = walk(&root, &m, 2, &AtomicBool::new(false)).unwrap();
        let skipped: Vec<(&str, &str)> = walked
            .skipped
            .iter()
            .map(|(r, s)| (r.as_str(), s.as_str()))
            .collect();
        assert_eq!(
            skipped,
            [
                ("broken", "broken_link"),
                ("d/self", "repeated_directory"),
                ("d/up", "repeated_directory"),
                ("dir-link/self", "repeated_directory"),
                ("dir-link/up", "repeated_directory"),
                ("out-link", "link_outside_root"),
            ]
        );
        fs::remove_dir_all(&root).unwrap();
        fs::remove_dir_all(&outside).unwrap();
    }
}
