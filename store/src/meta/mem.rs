//! `MemMetaStore`: the simulated metadata store, with sled's crash semantics.
//!
//! # Fault model
//! Writes apply at once to what the process reads. [`MetaStore::flush`] makes every
//! earlier write durable. [`MemMetaStore::crash`] keeps the durable state plus a prefix
//! (chosen by the seeded RNG) of the writes since the last flush, as sled's log would.
//! The store outlives a simulated process: the sim keeps it beside the node's `SimDisk`.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::{MetaStore, MetaTree};
use crate::error::Result;

type Trees = BTreeMap<MetaTree, BTreeMap<String, Vec<u8>>>;

#[derive(Clone, Debug)]
enum Op {
    Put(MetaTree, String, Vec<u8>),
    Remove(MetaTree, String),
}

#[derive(Debug)]
struct State {
    current: Trees,
    durable: Trees,
    /// Writes since the last flush, oldest first.
    pending: Vec<Op>,
    rng: StdRng,
}

#[derive(Clone, Debug)]
pub struct MemMetaStore {
    state: Arc<Mutex<State>>,
}

fn apply(trees: &mut Trees, op: &Op) {
    match op {
        Op::Put(tree, key, value) => {
            trees
                .entry(*tree)
                .or_default()
                .insert(key.clone(), value.clone());
        }
        Op::Remove(tree, key) => {
            trees.entry(*tree).or_default().remove(key);
        }
    }
}

impl MemMetaStore {
    pub fn new(seed: u64) -> Self {
        MemMetaStore {
            state: Arc::new(Mutex::new(State {
                current: Trees::new(),
                durable: Trees::new(),
                pending: Vec::new(),
                rng: StdRng::seed_from_u64(seed),
            })),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().expect("MemMetaStore poisoned")
    }

    fn write(&self, op: Op) {
        let mut state = self.lock();
        apply(&mut state.current, &op);
        state.pending.push(op);
    }

    /// Power loss: flushed writes survive, and a random prefix of the rest.
    pub fn crash(&self) {
        let mut state = self.lock();
        let pending_count = state.pending.len();
        let keep = state.rng.gen_range(0..=pending_count);
        let pending = std::mem::take(&mut state.pending);
        let mut durable = state.durable.clone();
        for op in &pending[..keep] {
            apply(&mut durable, op);
        }
        state.current = durable.clone();
        state.durable = durable;
    }
}

impl MetaStore for MemMetaStore {
    fn get(&self, tree: MetaTree, key: &str) -> Result<Option<Vec<u8>>> {
        Ok(self
            .lock()
            .current
            .get(&tree)
            .and_then(|t| t.get(key))
            .cloned())
    }

    fn put(&self, tree: MetaTree, key: &str, value: &[u8]) -> Result<()> {
        self.write(Op::Put(tree, key.to_string(), value.to_vec()));
        Ok(())
    }

    fn remove(&self, tree: MetaTree, key: &str) -> Result<()> {
        self.write(Op::Remove(tree, key.to_string()));
        Ok(())
    }

    fn scan(&self, tree: MetaTree) -> Result<Vec<(String, Vec<u8>)>> {
        let state = self.lock();
        Ok(state
            .current
            .get(&tree)
            .map(|t| t.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
            .unwrap_or_default())
    }

    async fn flush(&self) -> Result<()> {
        let mut state = self.lock();
        let pending = std::mem::take(&mut state.pending);
        for op in &pending {
            apply(&mut state.durable, op);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::meta::{conformance, Meta};

    #[tokio::test]
    async fn conforms() {
        conformance(Meta::new(MemMetaStore::new(1))).await;
    }

    #[tokio::test]
    async fn crash_keeps_flushed_writes_and_a_prefix_of_the_rest() {
        for seed in 0..20 {
            let store = MemMetaStore::new(seed);
            let meta = Meta::new(store.clone());
            meta.put_consumer_offset("G", "T", 0, 1).unwrap();
            meta.flush().await.unwrap();
            for offset in 2..=10 {
                meta.put_consumer_offset("G", "T", 0, offset).unwrap();
            }
            store.crash();
            let after = meta.consumer_offset("G", "T", 0).unwrap().unwrap();
            assert!((1..=10).contains(&after), "seed {seed}: {after}");
        }
    }
}
