//! Runs the simulation over many seeds with faults, replays a seed to show determinism, and
//! shows that the checker catches a deliberately broken build.
//!
//! `SIM_SEEDS=N` runs seeds 0..N (default 20), `SIM_SEED=S` runs seed S alone, `SIM_SECONDS`
//! sets the simulated seconds of faults per seed (default 12), `SIM_VERBOSE=1` prints each
//! run's trace. Build with
//! `RUSTFLAGS="--cfg tokio_unstable"` (as `.ci/test` does) so tokio's own randomness is seeded.

use pemba_simtests::{run, Broken, Config, Stats};

/// A run's configuration: `SIM_SECONDS` sets how long the faulty phase lasts (default 12).
fn config(seed: u64) -> Config {
    let mut config = Config::new(seed);
    if let Some(seconds) = std::env::var("SIM_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
    {
        config.faulty = std::time::Duration::from_secs(seconds);
    }
    config
}

fn seeds() -> Vec<u64> {
    if let Some(seed) = std::env::var("SIM_SEED").ok().and_then(|s| s.parse().ok()) {
        return vec![seed];
    }
    let count = std::env::var("SIM_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20);
    (0..count).collect()
}

#[test]
fn every_seed_keeps_every_guarantee() {
    let mut failed = Vec::new();
    let mut total = Stats::default();
    for seed in seeds() {
        let outcome = run(&config(seed));
        let stats = outcome.stats();
        // A run that did next to nothing checks next to nothing.
        assert!(
            stats.acknowledged_writes >= 20
                && stats.checks_with_tokens >= 20
                && stats.watched_revisions >= 10,
            "seed {seed} did too little: {stats:?}"
        );
        total.acknowledged_writes += stats.acknowledged_writes;
        total.failed_writes += stats.failed_writes;
        total.answered_checks += stats.answered_checks;
        total.failed_checks += stats.failed_checks;
        total.checks_with_tokens += stats.checks_with_tokens;
        total.watched_revisions += stats.watched_revisions;
        if std::env::var_os("SIM_VERBOSE").is_some() {
            for line in outcome.trace() {
                eprintln!("{line}");
            }
        }
        if !outcome.violations.is_empty() {
            eprintln!("seed {seed}: {} violations", outcome.violations.len());
            for violation in outcome.violations.iter().take(20) {
                eprintln!("  {violation}");
            }
            eprintln!("  faults: {:?}", outcome.faults);
            eprintln!(
                "  replay: SIM_SEED={seed} RUSTFLAGS=\"--cfg tokio_unstable\" cargo test --release -p pemba-simtests --test simulation every_seed -- --nocapture"
            );
            failed.push(seed);
        }
    }
    eprintln!("all seeds: {total:?}");
    assert!(failed.is_empty(), "seeds with violations: {failed:?}");
}

#[test]
fn a_seed_replays_exactly() {
    let seed = seeds()[0];
    let first = run(&config(seed)).trace();
    let second = run(&config(seed)).trace();
    assert!(first.len() > 50, "too little happened: {first:#?}");
    if let Some(i) = (0..first.len().min(second.len())).find(|i| first[*i] != second[*i]) {
        panic!(
            "seed {seed} diverged at event {i}:\n  first:  {}\n  second: {}",
            first[i], second[i]
        );
    }
    assert_eq!(first.len(), second.len());
}

#[test]
fn the_checker_catches_followers_that_ignore_tokens() {
    caught_within(Broken::IgnoreTokens, 10, "stale read");
}

/// Runs seeds with `broken` until a violation mentioning `symptom` shows; fails after `seeds`.
fn caught_within(broken: Broken, seeds: u64, symptom: &str) {
    for seed in 0..seeds {
        let config = Config {
            broken,
            ..config(seed)
        };
        let outcome = run(&config);
        if let Some(violation) = outcome.violations.iter().find(|v| v.contains(symptom)) {
            eprintln!("{broken:?} caught at seed {seed}: {violation}");
            return;
        }
    }
    panic!("{seeds} seeds ran with {broken:?} and the checker saw no \"{symptom}\"");
}

#[test]
fn the_checker_catches_a_leader_that_ignores_the_clock_bound() {
    caught_within(Broken::IgnoreClockBound, 50, "off the real time");
}
