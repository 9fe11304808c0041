//! Before the final reads, what the brokers still move by themselves must have moved:
//! undecided transactions decided or discarded, due delayed messages delivered to their
//! topics. Each master says how many it holds (GET_BROKER_RUNTIME_INFO).

use std::time::Duration;

use crate::workload::client_config;

/// Runtime keys of what a master still holds.
pub const TRANSACTIONS_PENDING: &str = "raftmqTransactionsPending";
pub const DELAYED_PENDING: &str = "raftmqDelayedPending";

/// Waits until every group's master reports zero for `key`, for at most `bound`. A
/// master counts what its last round read, so zero must be seen twice, a round
/// (`interval`) apart. Returns what is still pending (`usize::MAX`: a master did not
/// say).
pub async fn await_zero(namesrv: &str, key: &str, bound: Duration, interval: Duration) -> usize {
    let admin = client::Admin::new(client_config(namesrv, "settle"));
    let round = interval + Duration::from_millis(100);
    let pending = admin.await_runtime_zero(&[key], bound, round).await;
    pending.map_or(usize::MAX, |n| n as usize)
}

/// Waits until no message of `group` is on its way back: every master reports no
/// delayed message pending (a send-back waits there for its delay) and the group has
/// consumed everything it subscribes to, its retry topic included, twice in a row, a
/// round (`interval`) apart. A message the group fails again is sent back before its
/// offset moves, so a round that sees no lag sees that copy pending when it reads the
/// pending count again (a copy waits there at least 2 s). Returns whether it
/// settled within `bound`.
pub async fn await_group_settled(
    namesrv: &str,
    group: &str,
    bound: Duration,
    interval: Duration,
) -> bool {
    let admin = client::Admin::new(client_config(namesrv, "settle"));
    let deadline = tokio::time::Instant::now() + bound;
    let mut settled_seen = 0;
    loop {
        let pending = admin.runtime_sum(DELAYED_PENDING).await;
        let lag = admin
            .consumer_progress_all(group)
            .await
            .map(|queues| queues.iter().map(|q| q.lag()).sum::<u64>());
        // Pending again after the lag: a copy sent back between the two reads is seen.
        let pending_after = admin.runtime_sum(DELAYED_PENDING).await;
        let settled = pending == Some(0) && matches!(lag, Ok(0)) && pending_after == Some(0);
        settled_seen = if settled { settled_seen + 1 } else { 0 };
        if settled_seen >= 2 {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            tracing::info!(target: "sim::settle", group, ?pending, ?lag, "group not settled");
            return false;
        }
        tokio::time::sleep(interval + Duration::from_millis(100)).await;
    }
}
