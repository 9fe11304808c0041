//! The lazy filesystem keeps what was fsynced and loses the rest on a power loss.
//! Mounting FUSE needs root and /dev/fuse (CI has both); elsewhere the test says why it
//! did not run.

use std::fs::OpenOptions;
use std::io::{Read, Write};

use jepsen::lazyfs::LazyFs;

#[test]
fn power_loss_drops_exactly_the_unsynced_writes() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 || !std::path::Path::new("/dev/fuse").exists() {
        eprintln!("SKIPPED: mounting FUSE needs root and /dev/fuse");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (backing, mnt) = (dir.path().join("disk"), dir.path().join("mnt"));
    let fs = LazyFs::mount(&backing, &mnt).unwrap();

    std::fs::create_dir_all(mnt.join("commitlog")).unwrap();
    let path = mnt.join("commitlog").join("00000000");
    let mut f = OpenOptions::new()
        .create(true)
        .read(true)
        .write(true)
        .truncate(true)
        .open(&path)
        .unwrap();
    f.write_all(b"synced;").unwrap();
    f.sync_data().unwrap();
    f.write_all(b"unsynced").unwrap();
    // Before the power loss every write is visible, through the mount only.
    let mut text = String::new();
    std::fs::File::open(&path)
        .unwrap()
        .read_to_string(&mut text)
        .unwrap();
    assert_eq!(text, "synced;unsynced");
    assert_eq!(
        std::fs::read(backing.join("commitlog/00000000")).unwrap(),
        b"synced;"
    );
    assert_eq!(fs.unsynced_bytes(), 8);

    drop(f);
    assert_eq!(fs.lose_unsynced(), 8);
    assert_eq!(std::fs::read(&path).unwrap(), b"synced;");
    assert_eq!(std::fs::metadata(&path).unwrap().len(), 7);

    // Renames and truncation reach the backing directory at once.
    std::fs::rename(&path, mnt.join("commitlog").join("renamed")).unwrap();
    let f = OpenOptions::new()
        .write(true)
        .open(mnt.join("commitlog/renamed"))
        .unwrap();
    f.set_len(3).unwrap();
    assert_eq!(
        std::fs::read(backing.join("commitlog/renamed")).unwrap(),
        b"syn"
    );
    let names: Vec<String> = std::fs::read_dir(mnt.join("commitlog"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(names, vec!["renamed"]);
}
