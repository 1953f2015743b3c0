//! The collector of a job: digests in, finished files out, in manifest order.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::error::ScanError;
use crate::hash::chunk_count;
use crate::hold::Buffer;
use crate::job::{Batch, Cached, Msg};
use crate::walk::FileList;
use crate::workers::{Results, Tasks};

/// Batches are sent at most this often, or every `FLUSH_FILES` files.
const FLUSH_FILES: usize = 4096;
const FLUSH_INTERVAL: Duration = Duration::from_millis(20);

/// Collects digests and sends finished files in manifest order. Only the digests of tasks past
/// the first unfinished file are held (`window`), so memory does not grow with the tree.
///
/// Held chunk bytes do not wait for their file: they go out with the next batch after they
/// arrive (a batch may then carry no file at all), so a file larger than the byte budget still
/// finishes, and the consumer can use a chunk while the rest of its file is being read.
pub(crate) fn collect(
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
    let mut held: Vec<([u8; 32], Buffer)> = Vec::new();
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
        let news = frontier > batch_start || !held.is_empty();
        if news && (frontier == n || frontier - batch_start >= FLUSH_FILES || due) {
            let batch = Batch {
                files: Arc::clone(files),
                start: batch_start,
                end: frontier,
                digests: std::mem::take(&mut ready),
                held: std::mem::take(&mut held),
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
                for (t, d, bytes) in results {
                    if let Some(bytes) = bytes {
                        held.push((d, bytes));
                        deadline.get_or_insert_with(|| Instant::now() + FLUSH_INTERVAL);
                    }
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
