//! Every platform-specific call of the native core, each with a portable fallback.
//!
//! - `FileId`/`file_id`: what identifies a directory for symlink-cycle detection (device + inode on
//!   Unix; elsewhere the canonical path, which names one directory as well, at the cost of a
//!   syscall per directory).
//! - `open_read`: opens a file for reading without ever blocking on a FIFO that replaced a regular
//!   file after the walk (`O_NONBLOCK` on Unix; Windows has no FIFOs in the file system).
//! - `DirHandle`/`open_dir`/`open_in`: open files by name in an open directory (`openat` on Unix,
//!   which skips the path lookup per file; elsewhere the joined path).
//! - `read_at`: positional read (`pread` on Unix, `seek_read` on Windows, seek + read elsewhere).
//! - `escape_name`: a file name that is not valid Unicode, shown with its bad bytes as `\xNN`.
//! - `os_code`: the raw OS error number, split into errno (Unix) or winerror (Windows), for Python.
//! - `stamp`: the stat fingerprint the hash cache compares (mtime and ctime in ns, inode, device
//!   on Unix, the same numbers Python's `os.stat` gives; elsewhere the modification and creation
//!   times with inode and device 0, so a cache there relies on times and size).
//!
//! Paths come out `/`-separated everywhere because the walk builds relative paths by joining
//! component names with `/` itself, never from the OS's path text.

use std::ffi::OsStr;
use std::fs::{File, Metadata};
use std::io;
use std::path::Path;

/// The stat fingerprint of a file, for the hash cache.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stamp {
    pub mtime_ns: i64,
    pub ctime_ns: i64,
    pub ino: u64,
    pub dev: u64,
}

/// A raw OS error code, as Python's `OSError` wants it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OsCode {
    Errno(i32),
    WinError(i32),
}

#[cfg(unix)]
mod imp {
    use super::{io, File, Metadata, OsCode, OsStr, Path};
    use std::ffi::CString;
    use std::fs::OpenOptions;
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt};

    pub type FileId = (u64, u64);

    pub fn file_id(_path: &Path, meta: &Metadata) -> io::Result<FileId> {
        Ok((meta.dev(), meta.ino()))
    }

    pub fn stamp(meta: &Metadata) -> super::Stamp {
        super::Stamp {
            mtime_ns: meta
                .mtime()
                .saturating_mul(1_000_000_000)
                .saturating_add(meta.mtime_nsec()),
            ctime_ns: meta
                .ctime()
                .saturating_mul(1_000_000_000)
                .saturating_add(meta.ctime_nsec()),
            ino: meta.ino(),
            dev: meta.dev(),
        }
    }

    pub fn open_read(path: &Path) -> io::Result<File> {
        OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(path)
    }

    /// An open directory, for opening its files by name (`openat`: no path lookup per file).
    pub struct DirHandle(OwnedFd);

    pub fn open_dir(path: &Path) -> io::Result<DirHandle> {
        let file = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_DIRECTORY)
            .open(path)?;
        Ok(DirHandle(OwnedFd::from(file)))
    }

    pub fn open_in(dir: &DirHandle, name: &str) -> io::Result<File> {
        let cname =
            CString::new(name).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        let flags = libc::O_RDONLY | libc::O_NONBLOCK | libc::O_CLOEXEC;
        // SAFETY: a valid directory fd, a NUL-terminated name; the result is checked below.
        let fd = unsafe { libc::openat(dir.0.as_raw_fd(), cname.as_ptr(), flags) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` is a new descriptor that nothing else owns.
        Ok(File::from(unsafe { OwnedFd::from_raw_fd(fd) }))
    }

    pub fn read_at(file: &File, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        file.read_at(buf, offset)
    }

    pub fn name_bytes(name: &OsStr) -> Vec<u8> {
        name.as_bytes().to_vec()
    }

    pub fn os_code(err: &io::Error) -> Option<OsCode> {
        err.raw_os_error().map(OsCode::Errno)
    }
}

#[cfg(windows)]
mod imp {
    use super::{io, File, Metadata, OsCode, OsStr, Path};
    use std::os::windows::ffi::OsStrExt;
    use std::os::windows::fs::FileExt;
    use std::path::PathBuf;

    pub type FileId = PathBuf;

    pub fn file_id(path: &Path, _meta: &Metadata) -> io::Result<FileId> {
        std::fs::canonicalize(path)
    }

    pub fn stamp(meta: &Metadata) -> super::Stamp {
        super::Stamp {
            mtime_ns: super::system_ns(meta.modified()),
            ctime_ns: super::system_ns(meta.created()),
            ino: 0,
            dev: 0,
        }
    }

    pub fn open_read(path: &Path) -> io::Result<File> {
        File::open(path)
    }

    /// An open directory (portable fallback: its path; files are opened by joined path).
    pub struct DirHandle(PathBuf);

    pub fn open_dir(path: &Path) -> io::Result<DirHandle> {
        Ok(DirHandle(path.to_path_buf()))
    }

    pub fn open_in(dir: &DirHandle, name: &str) -> io::Result<File> {
        open_read(&dir.0.join(name))
    }

    pub fn read_at(file: &File, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        file.seek_read(buf, offset)
    }

    pub fn name_bytes(name: &OsStr) -> Vec<u8> {
        // Unpaired surrogates become U+FFFD, so the escaped text stays readable.
        let wide: Vec<u16> = name.encode_wide().collect();
        String::from_utf16_lossy(&wide).into_bytes()
    }

    pub fn os_code(err: &io::Error) -> Option<OsCode> {
        err.raw_os_error().map(OsCode::WinError)
    }
}

#[cfg(not(any(unix, windows)))]
mod imp {
    use super::{io, File, Metadata, OsCode, OsStr, Path};
    use std::io::{Read, Seek, SeekFrom};
    use std::path::PathBuf;

    pub type FileId = PathBuf;

    pub fn file_id(path: &Path, _meta: &Metadata) -> io::Result<FileId> {
        std::fs::canonicalize(path)
    }

    pub fn stamp(meta: &Metadata) -> super::Stamp {
        super::Stamp {
            mtime_ns: super::system_ns(meta.modified()),
            ctime_ns: super::system_ns(meta.created()),
            ino: 0,
            dev: 0,
        }
    }

    pub fn open_read(path: &Path) -> io::Result<File> {
        File::open(path)
    }

    /// An open directory (portable fallback: its path; files are opened by joined path).
    pub struct DirHandle(PathBuf);

    pub fn open_dir(path: &Path) -> io::Result<DirHandle> {
        Ok(DirHandle(path.to_path_buf()))
    }

    pub fn open_in(dir: &DirHandle, name: &str) -> io::Result<File> {
        open_read(&dir.0.join(name))
    }

    pub fn read_at(file: &File, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        let mut f = file;
        f.seek(SeekFrom::Start(offset))?;
        f.read(buf)
    }

    pub fn name_bytes(name: &OsStr) -> Vec<u8> {
        name.to_string_lossy().into_owned().into_bytes()
    }

    pub fn os_code(err: &io::Error) -> Option<OsCode> {
        err.raw_os_error().map(OsCode::Errno)
    }
}

pub use imp::{file_id, open_dir, open_in, open_read, os_code, read_at, stamp, DirHandle, FileId};

/// Nanoseconds since the Unix epoch (negative before it; 0 when the platform has no such time).
#[cfg(not(unix))]
fn system_ns(t: io::Result<std::time::SystemTime>) -> i64 {
    let Ok(t) = t else { return 0 };
    match t.duration_since(std::time::UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_nanos()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_nanos()).unwrap_or(i64::MAX),
    }
}

/// `bytes` as text, each byte that is not part of valid UTF-8 written as `\xNN` (lowercase hex),
/// exactly like Python's `bytes.decode("utf-8", "backslashreplace")`.
#[must_use]
pub fn escape_bytes(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() + 8);
    for chunk in bytes.utf8_chunks() {
        out.push_str(chunk.valid());
        for b in chunk.invalid() {
            out.push_str(&format!("\\x{b:02x}"));
        }
    }
    out
}

/// A file name that is not valid Unicode, for an error message.
#[must_use]
pub fn escape_name(name: &OsStr) -> String {
    escape_bytes(&imp::name_bytes(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_invalid_bytes_like_python() {
        assert_eq!(escape_bytes(b"ok"), "ok");
        assert_eq!(escape_bytes(b"a\xffb"), "a\\xffb");
        assert_eq!(escape_bytes("é\u{1F600}".as_bytes()), "é\u{1F600}");
        assert_eq!(escape_bytes(b"\xe9t\xe9"), "\\xe9t\\xe9");
    }

    #[test]
    fn read_at_reads_from_offset() {
        let dir = std::env::temp_dir().join(format!("roost-platform-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("f");
        std::fs::write(&p, b"0123456789").unwrap();
        let f = open_read(&p).unwrap();
        let mut buf = [0u8; 4];
        assert_eq!(read_at(&f, &mut buf, 3).unwrap(), 4);
        assert_eq!(&buf, b"3456");
        let m = std::fs::metadata(&p).unwrap();
        assert_eq!(
            file_id(&p, &m).unwrap(),
            file_id(&p, &std::fs::metadata(&p).unwrap()).unwrap()
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
