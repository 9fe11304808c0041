//! `StdDisk`: the real disk, files under a root directory.
//!
//! Never compiled into the simulated build: it blocks on real fsyncs, which it runs on
//! tokio's blocking pool so a 4 ms `fdatasync` does not stall the runtime's workers.
//! Appends and reads are `pwrite`/`pread` into the page cache and run inline; blocks a
//! caller [reserves](DiskFile::reserve) are allocated with `fallocate(FALLOC_FL_KEEP_SIZE)`
//! on the blocking pool, so appends do not allocate them.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use super::{Disk, DiskFile, DiskSpace};

#[derive(Clone, Debug)]
pub struct StdDisk {
    root: Arc<PathBuf>,
}

impl StdDisk {
    /// A disk rooted at `root`, which is created if missing.
    pub fn new(root: impl Into<PathBuf>) -> io::Result<Self> {
        let root = root.into();
        fs::create_dir_all(&root)?;
        Ok(StdDisk {
            root: Arc::new(root),
        })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn path(&self, name: &str) -> io::Result<PathBuf> {
        if name.is_empty()
            || name
                .split('/')
                .any(|part| part.is_empty() || part == "." || part == "..")
        {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("bad file name {name:?}"),
            ));
        }
        Ok(self.root.join(name))
    }
}

/// Runs blocking file-system work on tokio's blocking pool. Not reachable from the
/// simulator: StdDisk is cfg(not(madsim)).
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> io::Result<T> + Send + 'static,
) -> io::Result<T> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| io::Error::other(format!("file-system task failed: {e}")))?
}

/// Opens `path` for reading and writing, creating it (not durably) with `create`.
fn open_file(path: &Path, create: bool) -> io::Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(create)
        .truncate(false)
        .open(path)
}

/// Makes a directory entry change durable (`fsync` on the directory).
fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

fn walk(dir: &Path, root: &Path, prefix: &str, out: &mut Vec<String>) -> io::Result<()> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let entry = entry?;
        let path = entry.path();
        if entry.file_type()?.is_dir() {
            walk(&path, root, prefix, out)?;
        } else if let Ok(rel) = path.strip_prefix(root) {
            let name = rel
                .to_string_lossy()
                .replace(std::path::MAIN_SEPARATOR, "/");
            if name.starts_with(prefix) {
                out.push(name);
            }
        }
    }
    Ok(())
}

impl Disk for StdDisk {
    type File = StdFile;

    async fn open(&self, name: &str, create: bool) -> io::Result<StdFile> {
        let path = self.path(name)?;
        // Creating syncs the directory, which on ext4 commits the journal and so may
        // wait for other files' dirty pages (tens to hundreds of ms under write load):
        // that runs on the blocking pool, not on a runtime worker that other tasks
        // (other replicas' heartbeats, responses) are waiting for.
        let file = if create && !path.exists() {
            blocking(move || {
                let parent = path.parent().expect("joined path has a parent");
                fs::create_dir_all(parent)?;
                let file = open_file(&path, true)?;
                sync_dir(parent)?;
                Ok(file)
            })
            .await?
        } else {
            open_file(&path, create)?
        };
        let len = file.metadata()?.len();
        Ok(StdFile {
            inner: Arc::new(Inner {
                file,
                len: AtomicU64::new(len),
                reserved: AtomicU64::new(len),
            }),
        })
    }

    async fn remove(&self, name: &str) -> io::Result<()> {
        let path = self.path(name)?;
        // The directory sync, as for a create, runs off the runtime's workers.
        blocking(move || {
            fs::remove_file(&path)?;
            sync_dir(path.parent().expect("joined path has a parent"))
        })
        .await
    }

    async fn list(&self, prefix: &str) -> io::Result<Vec<String>> {
        // Walk only the deepest directory the prefix names.
        let dir = match prefix.rfind('/') {
            Some(i) => self.root.join(&prefix[..i]),
            None => self.root.to_path_buf(),
        };
        let mut out = Vec::new();
        walk(&dir, &self.root, prefix, &mut out)?;
        out.sort();
        Ok(out)
    }

    fn space(&self) -> io::Result<DiskSpace> {
        let path = std::ffi::CString::new(self.root.to_string_lossy().as_bytes())
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        // SAFETY: `path` is a valid NUL-terminated string and `stat` is a plain C struct
        // that statvfs fills in completely on success.
        let mut stat: libc::statvfs = unsafe { std::mem::zeroed() };
        let rc = unsafe { libc::statvfs(path.as_ptr(), &mut stat) };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(space_from_statvfs(
            stat.f_blocks as u64,
            stat.f_bfree as u64,
            stat.f_bavail as u64,
            stat.f_frsize as u64,
        ))
    }
}

/// The disk as `df` shows it: used blocks over used plus available ones. The blocks
/// the filesystem reserves for root (`f_bfree - f_bavail`; 5 % by default on ext4, far
/// more on some machines) count as neither, so retention's `disk_max_used_space_ratio`
/// means what `df`'s Use% says. Counting them as used made a 34 %-full disk read as 76 %
/// and retention delete unconsumed messages about a minute after they were written.
fn space_from_statvfs(blocks: u64, free: u64, available: u64, block_bytes: u64) -> DiskSpace {
    let used = blocks.saturating_sub(free);
    DiskSpace {
        total_bytes: used.saturating_add(available).saturating_mul(block_bytes),
        free_bytes: available.saturating_mul(block_bytes),
    }
}

#[derive(Clone, Debug)]
pub struct StdFile {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    file: File,
    /// Length including unsynced appends; only the single writer changes it.
    len: AtomicU64,
    /// Bytes from the start the latest `reserve` asked to allocate.
    reserved: AtomicU64,
}

/// Allocates `[from, to)` of `file` without changing its size.
fn allocate(file: &File, from: u64, to: u64) -> io::Result<()> {
    let (Ok(offset), Ok(len)) = (i64::try_from(from), i64::try_from(to - from)) else {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "range too large",
        ));
    };
    // SAFETY: a plain syscall on a descriptor `file` owns for the duration of the call.
    let rc = unsafe { libc::fallocate(file.as_raw_fd(), libc::FALLOC_FL_KEEP_SIZE, offset, len) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

impl DiskFile for StdFile {
    fn len(&self) -> u64 {
        self.inner.len.load(Ordering::Acquire)
    }

    async fn append(&self, data: &[u8]) -> io::Result<u64> {
        let offset = self.inner.len.load(Ordering::Acquire);
        self.inner.file.write_all_at(data, offset)?;
        self.inner
            .len
            .store(offset + data.len() as u64, Ordering::Release);
        Ok(offset)
    }

    async fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
        let len = self.len();
        if offset >= len {
            return Ok(0);
        }
        let n = buf.len().min((len - offset) as usize);
        self.inner.file.read_exact_at(&mut buf[..n], offset)?;
        Ok(n)
    }

    async fn sync(&self) -> io::Result<()> {
        let inner = self.inner.clone();
        blocking(move || inner.file.sync_data()).await
    }

    async fn truncate(&self, len: u64) -> io::Result<()> {
        assert!(len <= self.len(), "truncate may only shorten a file");
        // Freeing blocks can wait for the device (with the `discard` mount option ext4
        // discards them before returning: 28 ms measured for a checkpoint slot under
        // load), so it runs on the blocking pool, as `sync` does.
        let inner = self.inner.clone();
        blocking(move || inner.file.set_len(len)).await?;
        self.inner.len.store(len, Ordering::Release);
        self.inner.reserved.fetch_min(len, Ordering::AcqRel);
        Ok(())
    }

    fn reserve(&self, len: u64) {
        let from = self.inner.reserved.fetch_max(len, Ordering::AcqRel);
        if len <= from {
            return;
        }
        // Not awaited: the caller goes on appending below `from` meanwhile. (A real
        // thread, as in `blocking`: StdDisk is not compiled into the simulated build.)
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || {
            if let Err(e) = allocate(&inner.file, from, len) {
                // Only a lost optimisation (EOPNOTSUPP on some file systems; ENOSPC
                // surfaces again at the append that needs the space).
                tracing::debug!(from, len, error = %e, "could not reserve file blocks");
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn disk_usage_is_what_df_shows_not_counting_roots_reserve() {
        // A machine's statvfs: 66.05M blocks, 58.16M free, 15.93M available to
        // non-root users (a large root reserve). df: Use% 34.
        let space = space_from_statvfs(66_050_000, 58_160_000, 15_930_000, 4096);
        let ratio = space.used_ratio();
        assert!((0.33..0.34).contains(&ratio), "{ratio}");
        assert_eq!(space.free_bytes, 15_930_000 * 4096);
        // No reserve: used over total.
        let space = space_from_statvfs(1000, 250, 250, 4096);
        assert_eq!(space.used_ratio(), 0.75);
    }

    #[tokio::test]
    async fn append_read_truncate_list_remove() {
        let dir = tempfile::tempdir().unwrap();
        let disk = StdDisk::new(dir.path()).unwrap();
        let f = disk.open("a/b/file1", true).await.unwrap();
        assert_eq!(f.append(b"hello").await.unwrap(), 0);
        assert_eq!(f.append(b" world").await.unwrap(), 5);
        f.sync().await.unwrap();
        let mut buf = [0u8; 20];
        let n = f.read_at(6, &mut buf).await.unwrap();
        assert_eq!(&buf[..n], b"world");
        f.truncate(5).await.unwrap();
        assert_eq!(f.len(), 5);
        disk.open("a/c", true).await.unwrap();
        assert_eq!(
            disk.list("a/").await.unwrap(),
            vec!["a/b/file1".to_string(), "a/c".to_string()]
        );
        assert_eq!(
            disk.list("a/b").await.unwrap(),
            vec!["a/b/file1".to_string()]
        );
        let reopened = disk.open("a/b/file1", false).await.unwrap();
        assert_eq!(reopened.len(), 5);
        disk.remove("a/b/file1").await.unwrap();
        assert_eq!(
            disk.open("a/b/file1", false).await.unwrap_err().kind(),
            io::ErrorKind::NotFound
        );
        assert!(disk.open("../escape", true).await.is_err());
        assert!(disk.space().unwrap().total_bytes > 0);
    }

    /// Blocks of `path` allocated on the device, in bytes.
    fn allocated_bytes(path: &Path) -> u64 {
        use std::os::unix::fs::MetadataExt;
        fs::metadata(path).unwrap().blocks() * 512
    }

    #[tokio::test]
    async fn reserve_allocates_blocks_without_changing_the_length() {
        let dir = tempfile::tempdir().unwrap();
        let disk = StdDisk::new(dir.path()).unwrap();
        let f = disk.open("seg", true).await.unwrap();
        f.append(b"head").await.unwrap();
        let path = dir.path().join("seg");
        if let Err(e) = allocate(&f.inner.file, 0, 1) {
            // A file system without fallocate: nothing to check.
            eprintln!("skipping: fallocate unsupported here: {e}");
            return;
        }
        f.reserve(1 << 20);
        // The allocation runs in the background.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while allocated_bytes(&path) < 1 << 20 {
            assert!(
                std::time::Instant::now() < deadline,
                "1 MiB reserved, {} bytes allocated after 10 s",
                allocated_bytes(&path)
            );
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        assert_eq!(f.len(), 4);
        assert_eq!(
            fs::metadata(&path).unwrap().len(),
            4,
            "reserving kept the size"
        );
        assert_eq!(f.append(b"tail").await.unwrap(), 4);
        let mut buf = [0u8; 16];
        assert_eq!(f.read_at(0, &mut buf).await.unwrap(), 8);
        assert_eq!(&buf[..8], b"headtail");
        // A truncate frees what was reserved past it, and a reservation below what is
        // already reserved does nothing.
        f.truncate(4).await.unwrap();
        assert!(allocated_bytes(&path) < 1 << 20);
        f.reserve(2);
        assert_eq!(f.inner.reserved.load(Ordering::Acquire), 4);
    }
}
