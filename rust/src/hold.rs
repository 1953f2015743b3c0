//! Held chunk bytes: a job that keeps the bytes it hashed, within a budget the caller grants.
//!
//! A push uploads the very bytes it hashed, so that no byte is read or hashed twice. The caller
//! (which owns the memory: Python `bytes` objects, so no copy is needed to hand them over)
//! grants destination buffers with `Hold::grant`, one per chunk task in task order, up to a
//! byte budget; a worker takes the next task only once its buffer is granted, reads the chunk
//! straight into it and hashes it there. The buffer then travels with its digest to the
//! caller, who grants more as it lets buffers go. Granting strictly in task order is what keeps
//! this free of deadlock: the first unfinished task always holds its buffer before any later
//! one does, so the collector's frontier can always move.

use std::any::Any;
use std::collections::VecDeque;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use crate::hash::chunk_len;
use crate::walk::FileList;
use crate::workers::Tasks;

/// A writable buffer of exactly one chunk's length, kept alive by `owner`.
pub struct Buffer {
    ptr: NonNull<u8>,
    len: usize,
    /// Whether the memory is known to be initialised (a slice over it may then be formed).
    initialised: bool,
    owner: Box<dyn Any + Send>,
}

// SAFETY: the buffer is reached only through its `Buffer` (moved between threads, never
// shared), and `owner`, which keeps the memory alive, is itself `Send`.
unsafe impl Send for Buffer {}

impl Buffer {
    /// A buffer over `len` bytes at `ptr`, valid and exclusively ours while `owner` lives. The
    /// memory may be uninitialised: it is zeroed (by the worker, without the GIL) before a
    /// slice over it is ever formed.
    ///
    /// # Safety
    /// `ptr..ptr + len` must stay valid for writes, and be touched by nobody else, for as long
    /// as `owner` is alive.
    #[must_use]
    pub unsafe fn new(ptr: NonNull<u8>, len: usize, owner: Box<dyn Any + Send>) -> Self {
        Self {
            ptr,
            len,
            initialised: false,
            owner,
        }
    }

    /// A buffer that owns its memory (for callers without their own allocator, and tests).
    #[must_use]
    pub fn owned(len: usize) -> Self {
        let mut memory = vec![0u8; len].into_boxed_slice();
        let ptr = NonNull::new(memory.as_mut_ptr()).unwrap_or(NonNull::dangling());
        // SAFETY: the boxed slice's heap memory does not move when the box does.
        let mut buffer = unsafe { Self::new(ptr, len, Box::new(memory)) };
        buffer.initialised = true;
        buffer
    }

    /// The buffer's bytes (zeroed on first use if they may be uninitialised).
    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        if !self.initialised {
            // SAFETY: see `new`: `len` bytes valid for writes and ours alone.
            unsafe { std::ptr::write_bytes(self.ptr.as_ptr(), 0, self.len) };
            self.initialised = true;
        }
        // SAFETY: see `new`: valid, exclusive, `len` initialised bytes.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }

    #[must_use]
    pub fn len(&self) -> usize {
        self.len
    }

    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// What keeps the memory alive (the caller's object).
    #[must_use]
    pub fn into_owner(self) -> Box<dyn Any + Send> {
        self.owner
    }
}

impl std::fmt::Debug for Buffer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Buffer({} bytes)", self.len)
    }
}

struct State {
    /// The next task a worker takes.
    next: usize,
    /// Buffers of tasks `next..next + slots.len()` (granted, not yet taken).
    slots: VecDeque<Buffer>,
}

/// The grants of one job.
pub struct Hold {
    files: Arc<FileList>,
    tasks: Tasks,
    state: Mutex<State>,
    granted: Condvar,
}

const WAIT: Duration = Duration::from_millis(50);

fn lock(m: &Mutex<State>) -> MutexGuard<'_, State> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Hold {
    pub(crate) fn new(files: Arc<FileList>, tasks: Tasks) -> Self {
        Self {
            files,
            tasks,
            state: Mutex::new(State {
                next: 0,
                slots: VecDeque::new(),
            }),
            granted: Condvar::new(),
        }
    }

    pub(crate) fn tasks(&self) -> &Tasks {
        &self.tasks
    }

    fn task_len(&self, t: usize) -> usize {
        let (file, chunk) = self.tasks.locate(t);
        usize::try_from(chunk_len(self.files.size(file), chunk)).unwrap_or(usize::MAX)
    }

    /// Grants buffers (made by `alloc`) to the next tasks in order while their lengths fit in
    /// `budget` bytes; the first one is granted whatever its size. Returns the bytes granted.
    pub fn grant<E>(
        &self,
        budget: usize,
        mut alloc: impl FnMut(usize) -> Result<Buffer, E>,
    ) -> Result<usize, E> {
        if budget == 0 {
            return Ok(0);
        }
        let mut state = lock(&self.state);
        let total = self.tasks.total();
        let mut at = state.next + state.slots.len();
        let mut given = 0usize;
        while at < total {
            let len = self.task_len(at);
            if given > 0 && given.saturating_add(len) > budget {
                break;
            }
            state.slots.push_back(alloc(len)?);
            given += len;
            at += 1;
        }
        drop(state);
        if given > 0 {
            self.granted.notify_all();
        }
        Ok(given)
    }

    /// The next task with its buffer, waiting for a grant (`before_wait` runs once, unlocked,
    /// before the first wait); `None` when every task is taken or the job is cancelled.
    pub(crate) fn take(
        &self,
        cancel: &AtomicBool,
        before_wait: impl FnOnce() -> bool,
    ) -> Option<(usize, Buffer)> {
        let mut before_wait = Some(before_wait);
        let mut state = lock(&self.state);
        loop {
            if cancel.load(Ordering::Relaxed) || state.next >= self.tasks.total() {
                return None;
            }
            if let Some(buffer) = state.slots.pop_front() {
                let t = state.next;
                state.next += 1;
                return Some((t, buffer));
            }
            if let Some(f) = before_wait.take() {
                drop(state);
                if !f() {
                    return None;
                }
                state = lock(&self.state);
                continue;
            }
            state = self
                .granted
                .wait_timeout(state, WAIT)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }
}
