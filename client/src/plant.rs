//! PLANTED BUGS (`fault-injection` builds only) that the simulator's tests must catch
//! (`sim/tests/planted.rs`). Process-wide switches: in a simulation every client runs in
//! the one process, and a planted run turns the bug on for all of them.

use std::sync::atomic::{AtomicBool, Ordering};

static EARLY_OFFSET_COMMIT: AtomicBool = AtomicBool::new(false);
static OUT_OF_ORDER_DELIVERY: AtomicBool = AtomicBool::new(false);

/// A push consumer commits a pulled batch's offset to the broker *before* its listener
/// has processed the batch (and then takes a while to process it): a consumer that
/// crashes in between loses those messages to its group.
pub fn plant_early_offset_commit() {
    EARLY_OFFSET_COMMIT.store(true, Ordering::Relaxed);
}

/// A push consumer hands each pulled batch to its listener in reverse order.
pub fn plant_out_of_order_delivery() {
    OUT_OF_ORDER_DELIVERY.store(true, Ordering::Relaxed);
}

pub(crate) fn early_offset_commit() -> bool {
    EARLY_OFFSET_COMMIT.load(Ordering::Relaxed)
}

pub(crate) fn out_of_order_delivery() -> bool {
    OUT_OF_ORDER_DELIVERY.load(Ordering::Relaxed)
}
