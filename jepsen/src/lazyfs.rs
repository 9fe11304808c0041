//! A lazy filesystem for black-box power loss, in the spirit of Jepsen's LazyFS: a FUSE
//! passthrough over a backing directory that keeps every file write in memory until the
//! file is fsynced, and forgets all unsynced writes when told to
//! ([`LazyFs::lose_unsynced`]). A broker whose data dir is such a mount, killed with
//! kill -9 and then stripped of its unsynced writes, wakes up as after a power cut.
//!
//! What it models and what it does not:
//! - file data is durable only once `fsync`/`fdatasync` covered it; a lost write leaves
//!   the backing bytes as they were synced, and a lost extension is gone;
//! - a truncation is durable at once: cutting a file inside its unsynced tail keeps its
//!   new length, and the part not synced reads as zeros after a power loss (as some
//!   filesystems show it);
//! - an unlinked file's open handles stop working (a real filesystem keeps the inode
//!   until the last close); raftmq removes only segments it no longer reads;
//! - directory operations (create, mkdir, rename, unlink) and truncation reach the
//!   backing directory at once, as a journaling filesystem's metadata would after a
//!   commit; so a power loss never loses a file, only its unsynced contents;
//! - every open bypasses the kernel's page cache (`FOPEN_DIRECT_IO`), so nothing the
//!   filesystem forgot can be read back from the cache.

use std::collections::{BTreeMap, HashMap};
use std::ffi::OsStr;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use fuser::consts::FOPEN_DIRECT_IO;
use fuser::{
    BackgroundSession, FileAttr, FileType, Filesystem, MountOption, ReplyAttr, ReplyCreate,
    ReplyData, ReplyDirectory, ReplyEmpty, ReplyEntry, ReplyOpen, ReplyStatfs, ReplyWrite, Request,
    TimeOrNow,
};

/// No attribute or entry caching in the kernel: sizes change behind its back.
const TTL: Duration = Duration::ZERO;
const ROOT: u64 = 1;

/// One file's writes since its last fsync, in the order they came.
#[derive(Default)]
struct Dirty {
    writes: Vec<(u64, Vec<u8>)>,
}

impl Dirty {
    fn end(&self) -> u64 {
        self.writes
            .iter()
            .map(|(o, d)| o + d.len() as u64)
            .max()
            .unwrap_or(0)
    }

    /// Overlays the writes on `buf`, which holds the file from `offset`.
    fn overlay(&self, offset: u64, buf: &mut [u8]) {
        let end = offset + buf.len() as u64;
        for (o, d) in &self.writes {
            let (from, to) = ((*o).max(offset), (o + d.len() as u64).min(end));
            if from < to {
                buf[(from - offset) as usize..(to - offset) as usize]
                    .copy_from_slice(&d[(from - o) as usize..(to - o) as usize]);
            }
        }
    }

    /// Forgets what lies at or past `len` (a truncation).
    fn cut(&mut self, len: u64) {
        self.writes.retain_mut(|(o, d)| {
            if *o >= len {
                return false;
            }
            d.truncate((len - *o).min(d.len() as u64) as usize);
            true
        });
    }
}

#[derive(Default)]
struct State {
    paths: HashMap<u64, PathBuf>,
    inodes: HashMap<PathBuf, u64>,
    next_ino: u64,
    dirty: HashMap<u64, Dirty>,
    files: HashMap<u64, File>,
    /// Unsynced bytes forgotten so far.
    lost_bytes: u64,
}

impl State {
    fn ino(&mut self, path: &Path) -> u64 {
        if let Some(ino) = self.inodes.get(path) {
            return *ino;
        }
        self.next_ino += 1;
        let ino = self.next_ino;
        self.paths.insert(ino, path.to_path_buf());
        self.inodes.insert(path.to_path_buf(), ino);
        ino
    }

    fn path(&self, ino: u64) -> io::Result<PathBuf> {
        self.paths
            .get(&ino)
            .cloned()
            .ok_or_else(|| io::Error::from_raw_os_error(libc::ENOENT))
    }

    fn file(&mut self, ino: u64) -> io::Result<&File> {
        if !self.files.contains_key(&ino) {
            let f = OpenOptions::new()
                .read(true)
                .write(true)
                .open(self.path(ino)?)?;
            self.files.insert(ino, f);
        }
        Ok(&self.files[&ino])
    }

    fn attr(&mut self, ino: u64) -> io::Result<FileAttr> {
        let meta = fs::symlink_metadata(self.path(ino)?)?;
        let size = meta.len().max(self.dirty.get(&ino).map_or(0, Dirty::end));
        let time = |secs: i64, nsecs: i64| {
            UNIX_EPOCH + Duration::new(secs.max(0) as u64, nsecs.clamp(0, 999_999_999) as u32)
        };
        Ok(FileAttr {
            ino,
            size,
            blocks: size.div_ceil(512),
            atime: time(meta.atime(), meta.atime_nsec()),
            mtime: time(meta.mtime(), meta.mtime_nsec()),
            ctime: time(meta.ctime(), meta.ctime_nsec()),
            crtime: SystemTime::UNIX_EPOCH,
            kind: if meta.is_dir() {
                FileType::Directory
            } else {
                FileType::RegularFile
            },
            perm: (meta.permissions().mode() & 0o7777) as u16,
            nlink: meta.nlink() as u32,
            uid: meta.uid(),
            gid: meta.gid(),
            rdev: 0,
            blksize: 4096,
            flags: 0,
        })
    }

    /// Makes a file's unsynced writes durable.
    fn sync(&mut self, ino: u64) -> io::Result<()> {
        self.file(ino)?;
        let f = &self.files[&ino];
        if let Some(dirty) = self.dirty.get(&ino) {
            for (offset, data) in &dirty.writes {
                f.write_all_at(data, *offset)?;
            }
        }
        f.sync_data()?;
        // Forgotten only once durable: a failed sync keeps them.
        self.dirty.remove(&ino);
        Ok(())
    }

    /// Re-keys `from` (and everything under it) as `to` after a rename.
    fn moved(&mut self, from: &Path, to: &Path) {
        if from == to {
            return;
        }
        let affected: Vec<(PathBuf, u64)> = self
            .inodes
            .iter()
            .filter(|(p, _)| p.starts_with(from))
            .map(|(p, i)| (p.clone(), *i))
            .collect();
        if let Some(replaced) = self.inodes.get(to).copied() {
            self.forget(replaced);
        }
        for (old, ino) in affected {
            let new = to.join(old.strip_prefix(from).expect("under from"));
            self.inodes.remove(&old);
            self.inodes.insert(new.clone(), ino);
            self.paths.insert(ino, new);
        }
    }

    fn forget(&mut self, ino: u64) {
        if let Some(p) = self.paths.remove(&ino) {
            self.inodes.remove(&p);
        }
        self.dirty.remove(&ino);
        self.files.remove(&ino);
    }
}

/// A handle on a mounted lazy filesystem; unmounts when dropped.
pub struct LazyFs {
    state: Arc<Mutex<State>>,
    _session: BackgroundSession,
}

impl LazyFs {
    /// Mounts a lazy view of `backing` (created if missing) at `mountpoint`.
    pub fn mount(backing: &Path, mountpoint: &Path) -> anyhow::Result<Self> {
        fs::create_dir_all(backing)?;
        fs::create_dir_all(mountpoint)?;
        let mut state = State {
            next_ino: ROOT,
            ..State::default()
        };
        state.paths.insert(ROOT, backing.to_path_buf());
        state.inodes.insert(backing.to_path_buf(), ROOT);
        let state = Arc::new(Mutex::new(state));
        let fs = Fs {
            state: state.clone(),
        };
        let options = [MountOption::FSName("raftmq-lazyfs".into()), MountOption::RW];
        let session = fuser::spawn_mount2(fs, mountpoint, &options).map_err(|e| {
            anyhow::anyhow!(
                "mounting the lazy filesystem at {}: {e}",
                mountpoint.display()
            )
        })?;
        Ok(LazyFs {
            state,
            _session: session,
        })
    }

    /// Power loss: every write not yet fsynced is gone. Returns the bytes forgotten.
    pub fn lose_unsynced(&self) -> u64 {
        let mut s = lock(&self.state);
        let lost: u64 = s
            .dirty
            .values()
            .flat_map(|d| d.writes.iter())
            .map(|(_, d)| d.len() as u64)
            .sum();
        s.dirty.clear();
        s.files.clear();
        s.lost_bytes += lost;
        lost
    }

    /// Bytes written and not yet fsynced.
    pub fn unsynced_bytes(&self) -> u64 {
        lock(&self.state)
            .dirty
            .values()
            .flat_map(|d| d.writes.iter())
            .map(|(_, d)| d.len() as u64)
            .sum()
    }
}

fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    state.lock().expect("lazyfs state poisoned")
}

fn errno(e: &io::Error) -> i32 {
    e.raw_os_error().unwrap_or(libc::EIO)
}

fn reply_empty(reply: ReplyEmpty, result: io::Result<()>) {
    match result {
        Ok(()) => reply.ok(),
        Err(e) => reply.error(errno(&e)),
    }
}

struct Fs {
    state: Arc<Mutex<State>>,
}

impl Fs {
    fn child(&self, parent: u64, name: &OsStr) -> io::Result<PathBuf> {
        Ok(lock(&self.state).path(parent)?.join(name))
    }

    /// Removes a file or directory from the backing directory and forgets its inode.
    fn remove(
        &self,
        parent: u64,
        name: &OsStr,
        remove: fn(&Path) -> io::Result<()>,
    ) -> io::Result<()> {
        let path = self.child(parent, name)?;
        remove(&path)?;
        let mut s = lock(&self.state);
        if let Some(ino) = s.inodes.get(&path).copied() {
            s.forget(ino);
        }
        Ok(())
    }

    fn entry(&self, path: &Path, reply: ReplyEntry) {
        let mut s = lock(&self.state);
        let ino = s.ino(path);
        match s.attr(ino) {
            Ok(attr) => reply.entry(&TTL, &attr, 0),
            Err(e) => {
                s.forget(ino);
                reply.error(errno(&e))
            }
        }
    }
}

impl Filesystem for Fs {
    fn lookup(&mut self, _req: &Request<'_>, parent: u64, name: &OsStr, reply: ReplyEntry) {
        match self.child(parent, name) {
            Ok(path) if path.symlink_metadata().is_ok() => self.entry(&path, reply),
            Ok(_) => reply.error(libc::ENOENT),
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn getattr(&mut self, _req: &Request<'_>, ino: u64, _fh: Option<u64>, reply: ReplyAttr) {
        match lock(&self.state).attr(ino) {
            Ok(attr) => reply.attr(&TTL, &attr),
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn setattr(
        &mut self,
        _req: &Request<'_>,
        ino: u64,
        mode: Option<u32>,
        _uid: Option<u32>,
        _gid: Option<u32>,
        size: Option<u64>,
        _atime: Option<TimeOrNow>,
        _mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        _fh: Option<u64>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<u32>,
        reply: ReplyAttr,
    ) {
        let mut s = lock(&self.state);
        let result = (|| {
            if let Some(len) = size {
                s.file(ino)?.set_len(len)?;
                if let Some(d) = s.dirty.get_mut(&ino) {
                    d.cut(len);
                }
            }
            if let Some(mode) = mode {
                fs::set_permissions(s.path(ino)?, fs::Permissions::from_mode(mode))?;
            }
            s.attr(ino)
        })();
        match result {
            Ok(attr) => reply.attr(&TTL, &attr),
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn mkdir(
        &mut self,
        _req: &Request<'_>,
        parent: u64,
        name: &OsStr,
        mode: u32,
        _umask: u32,
        reply: ReplyEntry,
    ) {
        let result = self.child(parent, name).and_then(|p| {
            fs::create_dir(&p)?;
            fs::set_permissions(&p, fs::Permissions::from_mode(mode & 0o7777))?;
            Ok(p)
        });
        match result {
            Ok(p) => self.entry(&p, reply),
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn unlink(&mut self, _req: &Request<'_>, parent: u64, name: &OsStr, reply: ReplyEmpty) {
        reply_empty(reply, self.remove(parent, name, |p| fs::remove_file(p)));
    }

    fn rmdir(&mut self, _req: &Request<'_>, parent: u64, name: &OsStr, reply: ReplyEmpty) {
        reply_empty(reply, self.remove(parent, name, |p| fs::remove_dir(p)));
    }

    fn rename(
        &mut self,
        _req: &Request<'_>,
        parent: u64,
        name: &OsStr,
        newparent: u64,
        newname: &OsStr,
        _flags: u32,
        reply: ReplyEmpty,
    ) {
        let result = (|| {
            let (from, to) = (self.child(parent, name)?, self.child(newparent, newname)?);
            fs::rename(&from, &to)?;
            lock(&self.state).moved(&from, &to);
            Ok::<(), io::Error>(())
        })();
        reply_empty(reply, result);
    }

    fn open(&mut self, _req: &Request<'_>, ino: u64, _flags: i32, reply: ReplyOpen) {
        match lock(&self.state).file(ino) {
            Ok(_) => reply.opened(0, FOPEN_DIRECT_IO),
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn create(
        &mut self,
        _req: &Request<'_>,
        parent: u64,
        name: &OsStr,
        mode: u32,
        _umask: u32,
        _flags: i32,
        reply: ReplyCreate,
    ) {
        let result = (|| {
            let path = self.child(parent, name)?;
            OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(false)
                .mode(mode & 0o7777)
                .open(&path)?;
            let mut s = lock(&self.state);
            let ino = s.ino(&path);
            s.attr(ino)
        })();
        match result {
            Ok(attr) => reply.created(&TTL, &attr, 0, 0, FOPEN_DIRECT_IO),
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn read(
        &mut self,
        _req: &Request<'_>,
        ino: u64,
        _fh: u64,
        offset: i64,
        size: u32,
        _flags: i32,
        _lock_owner: Option<u64>,
        reply: ReplyData,
    ) {
        let mut s = lock(&self.state);
        let result = (|| {
            let offset = offset.max(0) as u64;
            let len = s.attr(ino)?.size;
            let end = (offset + size as u64).min(len);
            let mut buf = vec![0u8; end.saturating_sub(offset) as usize];
            let f = s.file(ino)?;
            let mut filled = 0;
            while filled < buf.len() {
                let n = f.read_at(&mut buf[filled..], offset + filled as u64)?;
                if n == 0 {
                    break; // Past the backing file's end: a hole the overlay may fill.
                }
                filled += n;
            }
            if let Some(d) = s.dirty.get(&ino) {
                d.overlay(offset, &mut buf);
            }
            Ok::<Vec<u8>, io::Error>(buf)
        })();
        match result {
            Ok(buf) => reply.data(&buf),
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn write(
        &mut self,
        _req: &Request<'_>,
        ino: u64,
        _fh: u64,
        offset: i64,
        data: &[u8],
        _write_flags: u32,
        _flags: i32,
        _lock_owner: Option<u64>,
        reply: ReplyWrite,
    ) {
        let mut s = lock(&self.state);
        s.dirty
            .entry(ino)
            .or_default()
            .writes
            .push((offset.max(0) as u64, data.to_vec()));
        reply.written(data.len() as u32);
    }

    fn flush(&mut self, _req: &Request<'_>, _ino: u64, _fh: u64, _lock: u64, reply: ReplyEmpty) {
        reply.ok(); // close(2) makes nothing durable.
    }

    fn fsync(&mut self, _req: &Request<'_>, ino: u64, _fh: u64, _data: bool, reply: ReplyEmpty) {
        let result = lock(&self.state).sync(ino);
        reply_empty(reply, result);
    }

    fn fsyncdir(&mut self, _req: &Request<'_>, _ino: u64, _fh: u64, _d: bool, reply: ReplyEmpty) {
        reply.ok(); // Directory operations are durable at once.
    }

    fn readdir(
        &mut self,
        _req: &Request<'_>,
        ino: u64,
        _fh: u64,
        offset: i64,
        mut reply: ReplyDirectory,
    ) {
        let mut s = lock(&self.state);
        let result = (|| {
            let dir = s.path(ino)?;
            let mut entries: BTreeMap<Vec<u8>, (u64, FileType)> = BTreeMap::new();
            for e in fs::read_dir(&dir)? {
                let e = e?;
                let kind = if e.file_type()?.is_dir() {
                    FileType::Directory
                } else {
                    FileType::RegularFile
                };
                let child = s.ino(&e.path());
                entries.insert(e.file_name().as_bytes().to_vec(), (child, kind));
            }
            Ok::<_, io::Error>(entries)
        })();
        match result {
            Ok(entries) => {
                let all = [
                    (b".".to_vec(), (ino, FileType::Directory)),
                    (b"..".to_vec(), (ino, FileType::Directory)),
                ]
                .into_iter()
                .chain(entries);
                for (i, (name, (child, kind))) in all.enumerate().skip(offset as usize) {
                    if reply.add(child, i as i64 + 1, kind, OsStr::from_bytes(&name)) {
                        break;
                    }
                }
                reply.ok();
            }
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn statfs(&mut self, _req: &Request<'_>, _ino: u64, reply: ReplyStatfs) {
        let root = lock(&self.state).path(ROOT).ok();
        let stat = root.and_then(|root| {
            let c = std::ffi::CString::new(root.as_os_str().as_bytes()).ok()?;
            let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
            // SAFETY: a valid C string and a zeroed out-parameter.
            (unsafe { libc::statvfs(c.as_ptr(), &mut st) } == 0).then_some(st)
        });
        match stat {
            Some(st) => reply.statfs(
                st.f_blocks,
                st.f_bfree,
                st.f_bavail,
                st.f_files,
                st.f_ffree,
                st.f_bsize as u32,
                st.f_namemax as u32,
                st.f_frsize as u32,
            ),
            None => reply.error(libc::EIO),
        }
    }

    fn access(&mut self, _req: &Request<'_>, _ino: u64, _mask: i32, reply: ReplyEmpty) {
        reply.ok();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_overlay_applies_in_order_and_cuts() {
        let mut d = Dirty::default();
        d.writes.push((2, b"abcd".to_vec()));
        d.writes.push((4, b"XY".to_vec()));
        let mut buf = [b'.'; 8];
        d.overlay(0, &mut buf);
        assert_eq!(&buf, b"..abXY..");
        assert_eq!(d.end(), 6);
        d.cut(3);
        assert_eq!(d.writes, vec![(2, b"a".to_vec())]);
    }
}
