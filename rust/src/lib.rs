//! `roost._native`: the native core of owlette-sdk.
//!
//! - `pattern`: ignore globs (gitignore-like) compiled to regexes.
//! - `walk`: the parallel directory walk (symlinks, cycles, special files).
//! - `hash`: reading and SHA-256 hashing of chunks (buffer or mmap), and `hash_chunks`.
//! - `cache`: the hash-cache lookup of a walk (the file format is Python's).
//! - `entries`: a finished scan's entries as JSON text (a push's version file list).
//! - `hold`: held chunk bytes: buffers the caller grants, filled and hashed by the workers.
//! - `job`: a cancellable scan job streaming finished files in manifest order: its API and
//!   coordinator; `workers` hash the chunks, `collect` orders the results.
//! - `platform`: every platform-specific call, with a portable fallback.
//! - `portable`: the fast answer to "can all these paths land on Windows?".
//! - `python`: the PyO3 glue.
//!
//! Everything but `python` is plain Rust, tested by `cargo test`.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod cache;
mod collect;
pub mod entries;
pub mod error;
pub mod hash;
pub mod hold;
pub mod job;
pub mod pattern;
pub mod platform;
pub mod portable;
mod python;
pub mod walk;
mod workers;

/// Whether this CPU has hardware SHA-256 instructions (SHA-NI on x86-64, the SHA2
/// extension on ARMv8). Reported for diagnostics and benchmarks.
#[must_use]
pub fn cpu_has_sha_extensions() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("sha")
    }
    #[cfg(target_arch = "aarch64")]
    {
        std::arch::is_aarch64_feature_detected!("sha2")
    }
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    {
        false
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn probe_does_not_panic() {
        let _ = super::cpu_has_sha_extensions();
    }
}
