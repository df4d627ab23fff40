//! Files and directories for goroutines: `std::fs` with every call that can
//! block made on gort-sched's blocking pool ([`gort_sched::blocking`]).
//!
//! # When to use it
//!
//! A `std::fs` call blocks the OS thread it runs on. On a goroutine that
//! thread is its M, and the goroutines bound to the M (every goroutine that
//! started there: they never change thread) wait until the call returns —
//! milliseconds for a cold disk read or an `fsync`, seconds on a network
//! file system. This module has `std::fs`'s API, but each call runs on a
//! pool thread while the calling goroutine parks, so its M keeps running
//! the others. From a plain OS thread (`main`, a thread of your own) the
//! calls run inline, exactly like `std::fs`.
//!
//! A call costs a hand-off to the pool and back: 7-16 µs on a 2-core VM
//! (the measurement is in [`gort_sched::blocking`]'s docs), several times a
//! `read` that hits the page cache. So:
//!
//! * use `gort::fs` in goroutines that share their M with others that must
//!   stay responsive (servers, anything latency-sensitive), and for
//!   anything that may be slow: large files, `sync_all`, network or FUSE
//!   file systems, directory walks;
//! * prefer the whole-file calls ([`read`], [`write()`], [`read_to_string`],
//!   [`copy`]) and `read_to_end`/`read_exact`/`write_all` on a [`File`]:
//!   each is *one* round trip, whereas `io::copy` or a small `BufReader`
//!   pay one per chunk (give `BufReader`/`BufWriter` a large capacity);
//! * `std::fs` is fine on plain threads, in start-up code before other
//!   goroutines exist, and for a few tiny calls where a stalled M for a
//!   moment is acceptable.
//!
//! # What goes through the pool
//!
//! Everything that reaches the file system: opening, reading, writing,
//! `metadata`, `set_len`, `sync_*`, seeking from the end (`lseek` with
//! `SEEK_END` asks the file system for the size: a network round trip on
//! NFS), and every free function. [`ReadDir`] fetches entries in batches of
//! 128 per round trip and learns each entry's file type in the same batch.
//! What cannot block runs inline: seeking to an absolute or relative
//! position (offset arithmetic in the kernel), `flush` (a `File` has no
//! user-space buffer; `std`'s is a no-op), `try_clone` (`dup`), and
//! closing a file on drop (as `std::fs`; call [`File::sync_all`] first to
//! make sure the data reached the disk).
//!
//! The types are thin wrappers: [`File`] converts from and into
//! `std::fs::File`; [`Metadata`], [`Permissions`], [`FileType`] are
//! `std`'s own. Arguments are borrowed by the pool thread for the duration
//! of the call (no copies); see [`gort_sched::blocking`] for what that
//! means for goroutines that allowed stack compaction.

use gort_sched::blocking;
use std::collections::VecDeque;
use std::ffi::OsString;
use std::fmt;
use std::io::{self, IoSlice, IoSliceMut, Read, Seek, SeekFrom, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};

pub use std::fs::{FileType, Metadata, Permissions};

/// Entries a [`ReadDir`] fetches per round trip to the pool.
const READ_DIR_BATCH: usize = 128;

/// An open file (`std::fs::File` whose calls run on the blocking pool).
///
/// `Read`, `Write` and `Seek` are implemented for `File` and `&File`, as for
/// `std::fs::File`. `read_to_end`, `read_to_string`, `read_exact` and
/// `write_all` are one round trip each, not one per chunk.
pub struct File {
    inner: std::fs::File,
}

impl fmt::Debug for File {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.inner.fmt(f)
    }
}

impl File {
    /// Opens a file for reading (`std::fs::File::open`).
    pub fn open<P: AsRef<Path>>(path: P) -> io::Result<File> {
        let path = path.as_ref();
        blocking(|| std::fs::File::open(path)).map(File::from_std)
    }

    /// Creates or truncates a file for writing (`std::fs::File::create`).
    pub fn create<P: AsRef<Path>>(path: P) -> io::Result<File> {
        let path = path.as_ref();
        blocking(|| std::fs::File::create(path)).map(File::from_std)
    }

    /// Creates a new file for reading and writing; fails if it exists
    /// (`std::fs::File::create_new`).
    pub fn create_new<P: AsRef<Path>>(path: P) -> io::Result<File> {
        let path = path.as_ref();
        blocking(|| std::fs::File::create_new(path)).map(File::from_std)
    }

    /// Options for opening a file ([`OpenOptions::new`]).
    pub fn options() -> OpenOptions {
        OpenOptions::new()
    }

    /// Wraps a `std::fs::File`.
    pub fn from_std(file: std::fs::File) -> File {
        File { inner: file }
    }

    /// The `std::fs::File` inside (its calls block the thread).
    pub fn into_std(self) -> std::fs::File {
        self.inner
    }

    /// Borrows the `std::fs::File` inside (its calls block the thread).
    pub fn as_std(&self) -> &std::fs::File {
        &self.inner
    }

    /// Flushes data and metadata to the disk (`fsync`).
    pub fn sync_all(&self) -> io::Result<()> {
        let f = &self.inner;
        blocking(|| f.sync_all())
    }

    /// Flushes data to the disk (`fdatasync`).
    pub fn sync_data(&self) -> io::Result<()> {
        let f = &self.inner;
        blocking(|| f.sync_data())
    }

    /// Truncates or extends the file to `size` bytes.
    pub fn set_len(&self, size: u64) -> io::Result<()> {
        let f = &self.inner;
        blocking(|| f.set_len(size))
    }

    /// The file's metadata (`fstat`).
    pub fn metadata(&self) -> io::Result<Metadata> {
        let f = &self.inner;
        blocking(|| f.metadata())
    }

    /// Changes the file's permissions (`fchmod`).
    pub fn set_permissions(&self, perm: Permissions) -> io::Result<()> {
        let f = &self.inner;
        blocking(|| f.set_permissions(perm))
    }

    /// A new handle to the same open file (`dup`; does not block).
    pub fn try_clone(&self) -> io::Result<File> {
        self.inner.try_clone().map(File::from_std)
    }
}

impl From<std::fs::File> for File {
    fn from(file: std::fs::File) -> File {
        File::from_std(file)
    }
}

impl From<File> for std::fs::File {
    fn from(file: File) -> std::fs::File {
        file.inner
    }
}

impl From<File> for OwnedFd {
    fn from(file: File) -> OwnedFd {
        file.inner.into()
    }
}

impl From<OwnedFd> for File {
    fn from(fd: OwnedFd) -> File {
        File::from_std(fd.into())
    }
}

impl AsFd for File {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.inner.as_fd()
    }
}

impl AsRawFd for File {
    fn as_raw_fd(&self) -> RawFd {
        self.inner.as_raw_fd()
    }
}

impl Read for &File {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let mut f = &self.inner;
        blocking(|| f.read(buf))
    }

    fn read_vectored(&mut self, bufs: &mut [IoSliceMut<'_>]) -> io::Result<usize> {
        let mut f = &self.inner;
        blocking(|| f.read_vectored(bufs))
    }

    fn read_to_end(&mut self, buf: &mut Vec<u8>) -> io::Result<usize> {
        let mut f = &self.inner;
        blocking(|| f.read_to_end(buf))
    }

    fn read_to_string(&mut self, buf: &mut String) -> io::Result<usize> {
        let mut f = &self.inner;
        blocking(|| f.read_to_string(buf))
    }

    fn read_exact(&mut self, buf: &mut [u8]) -> io::Result<()> {
        let mut f = &self.inner;
        blocking(|| f.read_exact(buf))
    }
}

impl Read for File {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        (&*self).read(buf)
    }

    fn read_vectored(&mut self, bufs: &mut [IoSliceMut<'_>]) -> io::Result<usize> {
        (&*self).read_vectored(bufs)
    }

    fn read_to_end(&mut self, buf: &mut Vec<u8>) -> io::Result<usize> {
        (&*self).read_to_end(buf)
    }

    fn read_to_string(&mut self, buf: &mut String) -> io::Result<usize> {
        (&*self).read_to_string(buf)
    }

    fn read_exact(&mut self, buf: &mut [u8]) -> io::Result<()> {
        (&*self).read_exact(buf)
    }
}

impl Write for &File {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let mut f = &self.inner;
        blocking(|| f.write(buf))
    }

    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        let mut f = &self.inner;
        blocking(|| f.write_vectored(bufs))
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        let mut f = &self.inner;
        blocking(|| f.write_all(buf))
    }

    /// A no-op, as for `std::fs::File`: nothing is buffered in user space.
    /// ([`File::sync_all`] and [`File::sync_data`] reach the disk.)
    fn flush(&mut self) -> io::Result<()> {
        (&self.inner).flush()
    }
}

impl Write for File {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        (&*self).write(buf)
    }

    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        (&*self).write_vectored(bufs)
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        (&*self).write_all(buf)
    }

    /// A no-op, as for `std::fs::File` (see `Write for &File`).
    fn flush(&mut self) -> io::Result<()> {
        (&*self).flush()
    }
}

impl Seek for &File {
    /// Moves the file offset. `SeekFrom::End` runs on the blocking pool
    /// (the file system is asked for the size); `Start` and `Current` are
    /// offset arithmetic in the kernel and run inline.
    fn seek(&mut self, pos: SeekFrom) -> io::Result<u64> {
        let mut f = &self.inner;
        match pos {
            SeekFrom::End(_) => blocking(|| f.seek(pos)),
            SeekFrom::Start(_) | SeekFrom::Current(_) => f.seek(pos),
        }
    }
}

impl Seek for File {
    /// See `Seek for &File`.
    fn seek(&mut self, pos: SeekFrom) -> io::Result<u64> {
        (&*self).seek(pos)
    }
}

/// Options for opening a file (`std::fs::OpenOptions`; only
/// [`open`](OpenOptions::open) touches the file system).
#[derive(Clone, Debug)]
pub struct OpenOptions {
    inner: std::fs::OpenOptions,
}

impl Default for OpenOptions {
    fn default() -> Self {
        OpenOptions::new()
    }
}

impl From<std::fs::OpenOptions> for OpenOptions {
    /// Takes options built with `std` (for platform extensions such as
    /// `std::os::unix::fs::OpenOptionsExt::mode`).
    fn from(inner: std::fs::OpenOptions) -> OpenOptions {
        OpenOptions { inner }
    }
}

impl OpenOptions {
    /// All options off.
    pub fn new() -> OpenOptions {
        OpenOptions {
            inner: std::fs::OpenOptions::new(),
        }
    }

    /// Open for reading.
    pub fn read(&mut self, read: bool) -> &mut OpenOptions {
        self.inner.read(read);
        self
    }

    /// Open for writing.
    pub fn write(&mut self, write: bool) -> &mut OpenOptions {
        self.inner.write(write);
        self
    }

    /// Open for appending (implies write).
    pub fn append(&mut self, append: bool) -> &mut OpenOptions {
        self.inner.append(append);
        self
    }

    /// Truncate the file to 0 bytes when opening it.
    pub fn truncate(&mut self, truncate: bool) -> &mut OpenOptions {
        self.inner.truncate(truncate);
        self
    }

    /// Create the file if it does not exist.
    pub fn create(&mut self, create: bool) -> &mut OpenOptions {
        self.inner.create(create);
        self
    }

    /// Create a new file; fail if it exists.
    pub fn create_new(&mut self, create_new: bool) -> &mut OpenOptions {
        self.inner.create_new(create_new);
        self
    }

    /// Opens `path` with these options.
    pub fn open<P: AsRef<Path>>(&self, path: P) -> io::Result<File> {
        let (o, path) = (&self.inner, path.as_ref());
        blocking(|| o.open(path)).map(File::from_std)
    }
}

/// Reads a whole file into a vector (one round trip).
pub fn read<P: AsRef<Path>>(path: P) -> io::Result<Vec<u8>> {
    let path = path.as_ref();
    blocking(|| std::fs::read(path))
}

/// Reads a whole UTF-8 file into a string (one round trip).
pub fn read_to_string<P: AsRef<Path>>(path: P) -> io::Result<String> {
    let path = path.as_ref();
    blocking(|| std::fs::read_to_string(path))
}

/// Creates or truncates a file and writes `contents` to it (one round
/// trip).
pub fn write<P: AsRef<Path>, C: AsRef<[u8]>>(path: P, contents: C) -> io::Result<()> {
    let (path, contents) = (path.as_ref(), contents.as_ref());
    blocking(|| std::fs::write(path, contents))
}

/// Metadata of a path, following symbolic links (`stat`).
pub fn metadata<P: AsRef<Path>>(path: P) -> io::Result<Metadata> {
    let path = path.as_ref();
    blocking(|| std::fs::metadata(path))
}

/// Metadata of a path, not following symbolic links (`lstat`).
pub fn symlink_metadata<P: AsRef<Path>>(path: P) -> io::Result<Metadata> {
    let path = path.as_ref();
    blocking(|| std::fs::symlink_metadata(path))
}

/// Whether a path exists: `Ok(false)` for a missing file or a broken
/// symbolic link, `Err` if that cannot be determined (`std::fs::exists`).
pub fn exists<P: AsRef<Path>>(path: P) -> io::Result<bool> {
    let path = path.as_ref();
    blocking(|| path.try_exists())
}

/// Creates a directory.
pub fn create_dir<P: AsRef<Path>>(path: P) -> io::Result<()> {
    let path = path.as_ref();
    blocking(|| std::fs::create_dir(path))
}

/// Creates a directory and any missing parents (one round trip).
pub fn create_dir_all<P: AsRef<Path>>(path: P) -> io::Result<()> {
    let path = path.as_ref();
    blocking(|| std::fs::create_dir_all(path))
}

/// Removes a file.
pub fn remove_file<P: AsRef<Path>>(path: P) -> io::Result<()> {
    let path = path.as_ref();
    blocking(|| std::fs::remove_file(path))
}

/// Removes an empty directory.
pub fn remove_dir<P: AsRef<Path>>(path: P) -> io::Result<()> {
    let path = path.as_ref();
    blocking(|| std::fs::remove_dir(path))
}

/// Removes a directory and everything in it (one round trip).
pub fn remove_dir_all<P: AsRef<Path>>(path: P) -> io::Result<()> {
    let path = path.as_ref();
    blocking(|| std::fs::remove_dir_all(path))
}

/// Renames a file or directory, replacing `to` if it exists.
pub fn rename<P: AsRef<Path>, Q: AsRef<Path>>(from: P, to: Q) -> io::Result<()> {
    let (from, to) = (from.as_ref(), to.as_ref());
    blocking(|| std::fs::rename(from, to))
}

/// Copies a file's contents and permissions; returns the bytes copied (one
/// round trip: the kernel copies, `copy_file_range` where it can).
pub fn copy<P: AsRef<Path>, Q: AsRef<Path>>(from: P, to: Q) -> io::Result<u64> {
    let (from, to) = (from.as_ref(), to.as_ref());
    blocking(|| std::fs::copy(from, to))
}

/// Creates a hard link `link` to `original`.
pub fn hard_link<P: AsRef<Path>, Q: AsRef<Path>>(original: P, link: Q) -> io::Result<()> {
    let (original, link) = (original.as_ref(), link.as_ref());
    blocking(|| std::fs::hard_link(original, link))
}

/// The target of a symbolic link.
pub fn read_link<P: AsRef<Path>>(path: P) -> io::Result<PathBuf> {
    let path = path.as_ref();
    blocking(|| std::fs::read_link(path))
}

/// The absolute path with every symbolic link and `..` resolved.
pub fn canonicalize<P: AsRef<Path>>(path: P) -> io::Result<PathBuf> {
    let path = path.as_ref();
    blocking(|| std::fs::canonicalize(path))
}

/// Changes a path's permissions.
pub fn set_permissions<P: AsRef<Path>>(path: P, perm: Permissions) -> io::Result<()> {
    let path = path.as_ref();
    blocking(|| std::fs::set_permissions(path, perm))
}

/// The entries of a directory, fetched in batches (see [`ReadDir`]).
pub fn read_dir<P: AsRef<Path>>(path: P) -> io::Result<ReadDir> {
    let path = path.as_ref();
    let inner = blocking(|| std::fs::read_dir(path))?;
    Ok(ReadDir {
        inner: Some(inner),
        batch: VecDeque::new(),
    })
}

/// An iterator over a directory's entries ([`read_dir`]). Entries come from
/// the blocking pool 128 at a time, each with its file type, so most calls
/// to `next` and [`DirEntry::file_type`] cost no round trip. Like
/// `std::fs::ReadDir`: no `.` or `..`, order unspecified.
#[derive(Debug)]
pub struct ReadDir {
    /// `None` once the directory is exhausted.
    inner: Option<std::fs::ReadDir>,
    batch: VecDeque<io::Result<DirEntry>>,
}

impl Iterator for ReadDir {
    type Item = io::Result<DirEntry>;

    fn next(&mut self) -> Option<io::Result<DirEntry>> {
        if self.batch.is_empty() {
            let inner = self.inner.as_mut()?;
            let batch = &mut self.batch;
            let more = blocking(|| {
                for _ in 0..READ_DIR_BATCH {
                    match inner.next() {
                        Some(e) => batch.push_back(e.map(|e| DirEntry {
                            // d_type from the directory itself; lstat only
                            // where the file system does not report it.
                            file_type: e.file_type().ok(),
                            inner: e,
                        })),
                        None => return false,
                    }
                }
                true
            });
            if !more {
                self.inner = None; // closes the directory
            }
        }
        self.batch.pop_front()
    }
}

/// An entry of a [`ReadDir`] (`std::fs::DirEntry`; its file type was
/// fetched with it).
pub struct DirEntry {
    inner: std::fs::DirEntry,
    file_type: Option<FileType>,
}

impl fmt::Debug for DirEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("DirEntry").field(&self.inner.path()).finish()
    }
}

impl DirEntry {
    /// The full path: the directory given to [`read_dir`] joined with the
    /// entry's name (no system call).
    pub fn path(&self) -> PathBuf {
        self.inner.path()
    }

    /// The entry's name within its directory (no system call).
    pub fn file_name(&self) -> OsString {
        self.inner.file_name()
    }

    /// The entry's metadata, not following symbolic links (`lstat`, on the
    /// blocking pool).
    pub fn metadata(&self) -> io::Result<Metadata> {
        let e = &self.inner;
        blocking(|| e.metadata())
    }

    /// The entry's file type, not following symbolic links: fetched with
    /// the entry, so usually no round trip.
    pub fn file_type(&self) -> io::Result<FileType> {
        match self.file_type {
            Some(t) => Ok(t),
            None => {
                let e = &self.inner;
                blocking(|| e.file_type())
            }
        }
    }

    /// The `std::fs::DirEntry` inside.
    pub fn into_std(self) -> std::fs::DirEntry {
        self.inner
    }
}
