//! Deliberate bugs, for proving that the simulation's checker catches them (the
//! `fault-injection` feature; production builds do not have it). Process-wide: a broken build is
//! broken on every node, and the simulation runs each seed in a process of its own.

use std::sync::atomic::{AtomicBool, Ordering};

static IGNORE_GC_HORIZON: AtomicBool = AtomicBool::new(false);

/// From now on, reads at revisions garbage collection passed are answered from what is left,
/// instead of failing.
pub fn ignore_gc_horizon() {
    IGNORE_GC_HORIZON.store(true, Ordering::SeqCst);
}

/// Whether [`ignore_gc_horizon`] was called.
pub(crate) fn gc_horizon_ignored() -> bool {
    IGNORE_GC_HORIZON.load(Ordering::SeqCst)
}
