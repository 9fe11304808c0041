//! Buggify points (FoundationDB's BUGGIFY; madsim's `buggify`). In a simulation whose
//! seed turned buggify on (`sim`'s swarm draws it), timings that are legal but rare in
//! tests become common: a follower's AppendEntries arriving late, so entries commit on a
//! bare majority; an fsync's completion reported late. Outside the simulator, and in
//! simulations without buggify, every point is off and costs a branch.

use std::time::Duration;

/// True with `probability` when the simulation enabled buggify; never otherwise.
#[cfg(madsim)]
pub fn buggify(probability: f64) -> bool {
    madsim::buggify::buggify_with_prob(probability)
}

#[cfg(not(madsim))]
#[inline(always)]
pub fn buggify(_probability: f64) -> bool {
    false
}

/// A random pause of up to `max`, from the simulation's seeded RNG.
#[cfg(madsim)]
pub async fn pause_up_to(max: Duration) {
    use madsim::rand::Rng;
    let ms = madsim::rand::thread_rng().gen_range(1..=max.as_millis().max(1) as u64);
    tokio::time::sleep(Duration::from_millis(ms)).await;
}

#[cfg(not(madsim))]
pub async fn pause_up_to(_max: Duration) {}
