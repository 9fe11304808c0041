//! `SledMetaStore`: the metadata store of the real binary. Never compiled into the
//! simulated build (sled spawns threads and cannot run under madsim).

use std::path::Path;

use super::{MetaStore, MetaTree};
use crate::error::{Result, StoreError};

#[derive(Clone)]
pub struct SledMetaStore {
    db: sled::Db,
}

fn err(e: sled::Error) -> StoreError {
    StoreError::Meta(e.to_string())
}

impl SledMetaStore {
    /// Opens (or creates) the store at `path`.
    ///
    /// sled releases its file lock from a background thread some time after the last
    /// handle drops, so a broker restarted in the same process (tests do) can find the
    /// lock still held: that case is retried for up to `LOCK_WAIT_MS`.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        const LOCK_WAIT_MS: u64 = 5_000;
        const RETRY_MS: u64 = 50;
        let path = path.as_ref();
        let mut waited_ms = 0;
        loop {
            match sled::open(path) {
                Ok(db) => return Ok(SledMetaStore { db }),
                Err(e) if e.to_string().contains("acquire lock") && waited_ms < LOCK_WAIT_MS => {
                    // A blocking sleep is fine here: opening happens once at start-up,
                    // and the simulator never compiles this file.
                    std::thread::sleep(std::time::Duration::from_millis(RETRY_MS));
                    waited_ms += RETRY_MS;
                }
                Err(e) => return Err(StoreError::Meta(format!("open {}: {e}", path.display()))),
            }
        }
    }

    fn tree(&self, tree: MetaTree) -> Result<sled::Tree> {
        self.db.open_tree(tree.name()).map_err(err)
    }
}

impl MetaStore for SledMetaStore {
    fn get(&self, tree: MetaTree, key: &str) -> Result<Option<Vec<u8>>> {
        Ok(self.tree(tree)?.get(key).map_err(err)?.map(|v| v.to_vec()))
    }

    fn put(&self, tree: MetaTree, key: &str, value: &[u8]) -> Result<()> {
        self.tree(tree)?.insert(key, value).map_err(err)?;
        Ok(())
    }

    fn remove(&self, tree: MetaTree, key: &str) -> Result<()> {
        self.tree(tree)?.remove(key).map_err(err)?;
        Ok(())
    }

    fn scan(&self, tree: MetaTree) -> Result<Vec<(String, Vec<u8>)>> {
        self.tree(tree)?
            .iter()
            .map(|item| {
                let (k, v) = item.map_err(err)?;
                Ok((String::from_utf8_lossy(&k).into_owned(), v.to_vec()))
            })
            .collect()
    }

    async fn flush(&self) -> Result<()> {
        let db = self.db.clone();
        // A real fsync: on the blocking pool, never in simulation (this file is not
        // compiled there).
        tokio::task::spawn_blocking(move || db.flush())
            .await
            .map_err(|e| StoreError::Meta(format!("flush task: {e}")))?
            .map_err(err)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::meta::{conformance, Meta};

    #[tokio::test]
    async fn conforms_and_persists() {
        let dir = tempfile::tempdir().unwrap();
        conformance(Meta::new(SledMetaStore::open(dir.path()).unwrap())).await;
        let reopened = Meta::new(SledMetaStore::open(dir.path()).unwrap());
        assert_eq!(reopened.consumer_offset("G", "T", 1).unwrap(), Some(11));
    }
}
