//! Every platform-specific call of the native core, each with a portable fallback.
//!
//! - `FileId`/`file_id`/`identity`: what identifies a file or directory: `(device, inode)` on
//!   Unix; on Windows `(volume serial, file index)` from the open handle; elsewhere a hash of the
//!   canonical path. Directories are compared for link cycles and repeats; files are compared at
//!   every open, to prove the opened file is the one the walk saw.
//! - `open_read`: opens a file for reading without ever blocking on a FIFO that replaced a regular
//!   file after the walk (`O_NONBLOCK` on Unix; Windows has no FIFOs in the file system).
//! - `DirHandle`/`open_dir`/`open_in`: open files by name in an open directory (`openat` on Unix,
//!   which skips the path lookup per file; elsewhere the joined path), without following a link
//!   in the last component unless asked (`O_NOFOLLOW`; `FILE_FLAG_OPEN_REPARSE_POINT` on Windows).
//! - `read_at`: positional read (`pread` on Unix, `seek_read` on Windows, seek + read elsewhere).
//! - `escape_name`: a file name that is not valid Unicode, shown with its bad bytes as `\xNN`.
//! - `os_code`: the raw OS error number, split into errno (Unix) or winerror (Windows), for Python.
//! - `stamp`: the stat fingerprint the hash cache compares (mtime and ctime in ns, inode, device
//!   on Unix, the same numbers Python's `os.stat` gives; elsewhere the modification and creation
//!   times with the file's identity).
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

impl Stamp {
    /// The file's identity, `(device, inode)`; `None` where the platform gave none.
    #[must_use]
    pub fn id(&self) -> Option<FileId> {
        (self.dev != 0 || self.ino != 0).then_some((self.dev, self.ino))
    }
}

/// `(device, inode)` or its platform equivalent.
pub type FileId = (u64, u64);

/// A raw OS error code, as Python's `OSError` wants it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OsCode {
    Errno(i32),
    WinError(i32),
}

#[cfg(unix)]
mod imp {
    use super::{io, File, FileId, Metadata, OsCode, OsStr, Path};
    use std::ffi::CString;
    use std::fs::OpenOptions;
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt};

    pub fn file_id(_path: &Path, meta: &Metadata) -> io::Result<FileId> {
        Ok((meta.dev(), meta.ino()))
    }

    pub fn identity(file: &File) -> io::Result<FileId> {
        let meta = file.metadata()?;
        Ok((meta.dev(), meta.ino()))
    }

    pub fn stamp(_path: &Path, meta: &Metadata) -> super::Stamp {
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

    pub fn open_in(dir: &DirHandle, name: &str, follow: bool) -> io::Result<File> {
        let cname =
            CString::new(name).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        let mut flags = libc::O_RDONLY | libc::O_NONBLOCK | libc::O_CLOEXEC;
        if !follow {
            flags |= libc::O_NOFOLLOW;
        }
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

/// Windows and any other non-Unix target: one implementation, the Windows calls cfg-gated.
#[cfg(not(unix))]
mod imp {
    use super::{io, File, FileId, Metadata, OsCode, OsStr, Path};
    use std::fs::OpenOptions;
    use std::path::PathBuf;

    #[cfg(windows)]
    mod win {
        use std::os::windows::io::AsRawHandle;

        pub const FILE_FLAG_OPEN_REPARSE_POINT: u32 = 0x0020_0000;
        pub const FILE_FLAG_BACKUP_SEMANTICS: u32 = 0x0200_0000;

        #[repr(C)]
        #[derive(Default)]
        struct FileTime {
            low: u32,
            high: u32,
        }

        #[repr(C)]
        #[derive(Default)]
        struct ByHandleFileInformation {
            attributes: u32,
            creation: FileTime,
            access: FileTime,
            write: FileTime,
            volume_serial: u32,
            size_high: u32,
            size_low: u32,
            links: u32,
            index_high: u32,
            index_low: u32,
        }

        #[link(name = "kernel32")]
        extern "system" {
            fn GetFileInformationByHandle(
                file: *mut core::ffi::c_void,
                info: *mut ByHandleFileInformation,
            ) -> i32;
        }

        /// `(volume serial, file index)` of an open file.
        pub fn identity(file: &std::fs::File) -> std::io::Result<(u64, u64)> {
            let mut info = ByHandleFileInformation::default();
            // SAFETY: a valid open handle and a properly sized, writable struct.
            let ok = unsafe { GetFileInformationByHandle(file.as_raw_handle().cast(), &mut info) };
            if ok == 0 {
                return Err(std::io::Error::last_os_error());
            }
            let index = (u64::from(info.index_high) << 32) | u64::from(info.index_low);
            Ok((u64::from(info.volume_serial), index))
        }
    }

    #[cfg(windows)]
    pub fn identity(file: &File) -> io::Result<FileId> {
        win::identity(file)
    }

    /// Elsewhere a file has no identity to read from its handle: unknown, not compared.
    #[cfg(not(windows))]
    pub fn identity(_file: &File) -> io::Result<FileId> {
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "no file identity on this platform",
        ))
    }

    #[cfg(windows)]
    pub fn file_id(path: &Path, _meta: &Metadata) -> io::Result<FileId> {
        use std::os::windows::fs::OpenOptionsExt;
        // Backup semantics opens directories too; the link itself when `path` is one is not
        // wanted here: the walk asks for what a link leads to.
        let file = OpenOptions::new()
            .access_mode(0)
            .custom_flags(win::FILE_FLAG_BACKUP_SEMANTICS)
            .open(path)?;
        win::identity(&file)
    }

    #[cfg(not(windows))]
    pub fn file_id(path: &Path, _meta: &Metadata) -> io::Result<FileId> {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        std::fs::canonicalize(path)?.hash(&mut h);
        Ok((0, h.finish()))
    }

    pub fn stamp(path: &Path, meta: &Metadata) -> super::Stamp {
        let (dev, ino) = if cfg!(windows) {
            file_id(path, meta).unwrap_or((0, 0))
        } else {
            (0, 0)
        };
        super::Stamp {
            mtime_ns: super::system_ns(meta.modified()),
            ctime_ns: super::system_ns(meta.created()),
            ino,
            dev,
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

    pub fn open_in(dir: &DirHandle, name: &str, follow: bool) -> io::Result<File> {
        let mut options = OpenOptions::new();
        options.read(true);
        #[cfg(windows)]
        if !follow {
            use std::os::windows::fs::OpenOptionsExt;
            options.custom_flags(win::FILE_FLAG_OPEN_REPARSE_POINT);
        }
        #[cfg(not(windows))]
        let _ = follow;
        options.open(dir.0.join(name))
    }

    #[cfg(windows)]
    pub fn read_at(file: &File, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        use std::os::windows::fs::FileExt;
        file.seek_read(buf, offset)
    }

    #[cfg(not(windows))]
    pub fn read_at(file: &File, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        use std::io::{Read, Seek, SeekFrom};
        let mut f = file;
        f.seek(SeekFrom::Start(offset))?;
        f.read(buf)
    }

    #[cfg(windows)]
    pub fn name_bytes(name: &OsStr) -> Vec<u8> {
        use std::os::windows::ffi::OsStrExt;
        // Unpaired surrogates become U+FFFD, so the escaped text stays readable.
        let wide: Vec<u16> = name.encode_wide().collect();
        String::from_utf16_lossy(&wide).into_bytes()
    }

    #[cfg(not(windows))]
    pub fn name_bytes(name: &OsStr) -> Vec<u8> {
        name.to_string_lossy().into_owned().into_bytes()
    }

    pub fn os_code(err: &io::Error) -> Option<OsCode> {
        if cfg!(windows) {
            err.raw_os_error().map(OsCode::WinError)
        } else {
            err.raw_os_error().map(OsCode::Errno)
        }
    }
}

pub use imp::{
    file_id, identity, open_dir, open_in, open_read, os_code, read_at, stamp, DirHandle,
};

/// Opens `path` (following links, as the walk did) and proves it is the file `want` names:
/// `Ok(None)` when it is another file (swapped since the walk), or when `want` is unknown.
pub fn open_checked(path: &Path, want: Option<FileId>) -> io::Result<Option<File>> {
    let file = open_read(path)?;
    Ok(is_same(&file, want)?.then_some(file))
}

/// Whether the open `file` is the one `want` names (true when `want` or the platform's identity
/// is unknown).
pub fn is_same(file: &File, want: Option<FileId>) -> io::Result<bool> {
    let Some(want) = want else { return Ok(true) };
    match identity(file) {
        Ok(got) => Ok(got == want),
        Err(e) if e.kind() == io::ErrorKind::Unsupported => Ok(true),
        Err(e) => Err(e),
    }
}

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
        let walked = stamp(&p, &m).id();
        assert!(open_checked(&p, walked).unwrap().is_some());
        let other = dir.join("g");
        std::fs::write(&other, b"other").unwrap();
        let swapped = stamp(&other, &std::fs::metadata(&other).unwrap()).id();
        #[cfg(unix)]
        assert!(open_checked(&p, swapped).unwrap().is_none());
        let _ = swapped;
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
