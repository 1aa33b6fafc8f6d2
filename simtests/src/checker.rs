//! Checks a recorded history against what the replicas hold.
//!
//! The committed history comes from the replica with the newest head: every revision's changes
//! and its time. From it a model replays the relationships at each revision and evaluates `view`
//! by hand (the schema is small enough to say it directly: a direct viewer, or a member of a
//! viewer group, where a relationship counts unless it expired before the revision's time),
//! independently of the engine under test. The guarantees checked are listed, one function
//! each, in [`INVARIANTS`].

use std::collections::{BTreeMap, BTreeSet};
use std::time::SystemTime;

use pemba_store::Change;
use pemba_types::{Relationship, Revision};

use crate::history::{Consistency, Event, Update};

/// The text of a relationship's key: without its expiration.
fn key_text(r: &Relationship) -> String {
    Relationship {
        expires_at: None,
        ..r.clone()
    }
    .to_string()
}

/// The relationships stored after each revision that changed any, by key text, and the time of
/// every revision.
struct Model {
    states: BTreeMap<Revision, BTreeMap<String, Relationship>>,
    times: Vec<SystemTime>,
}

impl Model {
    fn replay(history: &[(Revision, Vec<Change>)], times: Vec<SystemTime>) -> Model {
        let mut state = BTreeMap::new();
        let mut states = BTreeMap::from([(0, state.clone())]);
        for (revision, changes) in history {
            for change in changes {
                match change {
                    Change::Touch(r) => state.insert(key_text(r), Relationship::clone(r)),
                    Change::Delete(r) => state.remove(&key_text(r)),
                };
            }
            states.insert(*revision, state.clone());
        }
        Model { states, times }
    }

    /// The relationships stored after `revision`, expired or not.
    fn stored(&self, revision: Revision) -> &BTreeMap<String, Relationship> {
        self.states
            .range(..=revision)
            .next_back()
            .map(|(_, s)| s)
            .expect("revision 0 is always there")
    }

    /// True if `r` (its key) was stored after `revision` and had not expired at `time`.
    fn live(&self, revision: Revision, time: SystemTime, r: &Relationship) -> bool {
        self.stored(revision)
            .get(&key_text(r))
            .is_some_and(|stored| !stored.is_expired_at(time))
    }

    fn time(&self, revision: Revision) -> SystemTime {
        self.times[revision as usize]
    }

    fn can_view(&self, revision: Revision, document: &str, user: &str) -> bool {
        let time = self.time(revision);
        let holds = |text: String| {
            let r = Relationship::parse(&text).expect("a relationship");
            self.live(revision, time, &r)
        };
        if holds(format!("document:{document}#viewer@user:{user}")) {
            return true;
        }
        (0..crate::workload::GROUPS).any(|g| {
            holds(format!("document:{document}#viewer@group:g{g}#member"))
                && holds(format!("group:g{g}#member@user:{user}"))
        })
    }
}

/// What one node applied: each revision with its time and changes, in the order applied
/// (across the node's restarts; a revision applied again after a restart appears again).
pub type Observed = Vec<(Revision, SystemTime, Vec<Change>)>;

/// The committed history every node saw a part of: each revision's time and changes, agreed
/// by every node that applied it (garbage collection drops history from the nodes, so the
/// simulation records what they applied as they applied it).
struct Committed {
    /// Every revision from 0 to the newest applied anywhere: its time, and its changes if any
    /// node applied it (none for a revision every node took from a snapshot).
    revisions: Vec<(SystemTime, Option<Vec<Change>>)>,
}

impl Committed {
    fn gather(observed: &[(usize, Observed)], violations: &mut Vec<String>) -> Committed {
        let mut seen: BTreeMap<Revision, (usize, SystemTime, &Vec<Change>)> = BTreeMap::new();
        for (node, applied) in observed {
            for (revision, time, changes) in applied {
                match seen.get(revision) {
                    Some((other, their_time, theirs))
                        if (their_time, *theirs) != (time, changes) =>
                    {
                        violations.push(format!(
                            "node {node} disagrees with node {other} on revision {revision}: {changes:?} at {time:?}, not {theirs:?} at {their_time:?}"
                        ));
                    }
                    Some(_) => {}
                    None => {
                        seen.insert(*revision, (*node, *time, changes));
                    }
                }
            }
        }
        let head = seen.keys().next_back().copied().unwrap_or(0);
        let mut revisions = Vec::with_capacity(head as usize + 1);
        let mut time = SystemTime::UNIX_EPOCH;
        for revision in 0..=head {
            let changes = seen.get(&revision).map(|(_, t, c)| {
                time = *t;
                (*c).clone()
            });
            revisions.push((time, changes));
        }
        if revisions.windows(2).any(|pair| pair[1].0 < pair[0].0) {
            violations.push("the log's time went backwards".to_string());
        }
        Committed { revisions }
    }

    fn head(&self) -> Revision {
        self.revisions.len() as Revision - 1
    }

    /// Every revision some node applied, with its changes (none for an entry that wrote
    /// nothing), in order.
    fn history(&self) -> Vec<(Revision, Vec<Change>)> {
        self.revisions
            .iter()
            .enumerate()
            .filter_map(|(r, (_, changes))| changes.as_ref().map(|c| (r as Revision, c.clone())))
            .collect()
    }

    fn times(&self) -> Vec<SystemTime> {
        self.revisions.iter().map(|(time, _)| *time).collect()
    }
}

/// What every invariant is checked against: the recorded history of the clients' operations
/// and what the replicas committed.
struct Evidence<'a> {
    events: &'a [Event],
    /// Every revision some node applied, with its changes, in order.
    history: Vec<(Revision, Vec<Change>)>,
    /// The newest revision any replica applied.
    head: Revision,
    /// The relationships at each revision, replayed from `history`.
    model: Model,
}

/// An invariant: every violation of it, described.
type Invariant = fn(&Evidence) -> Vec<String>;

/// The guarantees every run is held to, one function each (the committed history itself is
/// checked as it is gathered: every node that applied a revision applied the same changes, and
/// the log's time never goes back).
const INVARIANTS: &[(&str, Invariant)] = &[
    (
        "acknowledged writes took effect, under their preconditions; no phantom change",
        writes_took_effect,
    ),
    (
        "checks are evaluated at the revision their consistency demands, and answered right",
        checks_are_right,
    ),
    (
        "watch streams are ordered, gapless and exactly the committed changes",
        watch_is_exact,
    ),
    ("refused writes left no trace", refused_writes_left_no_trace),
    (
        "reads see what completed before them",
        reads_see_what_completed_before_them,
    ),
    (
        "the log's time follows real time",
        log_time_follows_real_time,
    ),
    ("a node's reads never go back in time", reads_never_go_back),
];

/// Every violation of the history's guarantees, described.
pub fn check(events: &[Event], observed: &[(usize, Observed)]) -> Vec<String> {
    let mut violations = Vec::new();
    let committed = Committed::gather(observed, &mut violations);
    let history = committed.history();
    let evidence = Evidence {
        events,
        head: committed.head(),
        model: Model::replay(&history, committed.times()),
        history,
    };
    for (_, invariant) in INVARIANTS {
        violations.extend(invariant(&evidence));
    }
    violations
}

/// No acknowledged write lost; preconditions held where the write was applied; no change that
/// no client asked for; no write applied twice.
fn writes_took_effect(evidence: &Evidence) -> Vec<String> {
    let (events, model) = (evidence.events, &evidence.model);
    let history = &evidence.history;
    let revisions: BTreeSet<Revision> = history.iter().map(|(r, _)| *r).collect();
    let mut violations = Vec::new();
    let mut attempted: BTreeSet<(Update, String)> = BTreeSet::new();
    for event in events {
        if let Event::Write {
            update,
            relationship,
            precondition,
            result,
            ..
        } = event
        {
            // A create is stored as a touch.
            let stored = match update {
                Update::Create | Update::Touch => Update::Touch,
                Update::Delete => Update::Delete,
            };
            // A delete names a key; the change it makes names the stored relationship.
            let text = match stored {
                Update::Delete => key_text(relationship),
                _ => relationship.to_string(),
            };
            attempted.insert((stored, text));
            if *update == Update::Create && *result == Err(tonic::Code::AlreadyExists) {
                violations.push(format!(
                    "a write was applied twice (its create found itself): {event}"
                ));
            }
            if let Ok(revision) = result {
                // A write is planned at its revision's time: what expired by then is absent.
                let time = model.time(*revision);
                let applied = revisions.contains(revision)
                    && match stored {
                        Update::Delete => !model.live(*revision, time, relationship),
                        _ => {
                            model.stored(*revision).get(&key_text(relationship))
                                == Some(relationship)
                        }
                    };
                let overwritten = || {
                    group_mates(events, event, *revision, relationship)
                        .any(|mate| left_its_mark(model, *revision, mate))
                };
                if !applied && !overwritten() {
                    violations.push(format!("acknowledged write lost: {event}"));
                }
                if let Some((must, condition)) = precondition.as_deref() {
                    let held = model.live(revision.saturating_sub(1), time, condition);
                    // A write grouped before this one in its entry may have changed it.
                    let changed_in_group = || {
                        group_mates(events, event, *revision, condition)
                            .next()
                            .is_some()
                    };
                    if held != *must && !changed_in_group() {
                        violations.push(format!(
                            "precondition did not hold before the write was applied: {event}"
                        ));
                    }
                }
            }
        }
    }
    for (revision, changes) in history {
        for change in changes {
            let wanted = match change {
                Change::Touch(r) => (Update::Touch, r.to_string()),
                Change::Delete(r) => (Update::Delete, key_text(r)),
            };
            if !attempted.contains(&wanted) {
                violations.push(format!(
                    "phantom change at revision {revision}: {change:?} was never written"
                ));
            }
        }
    }

    violations
}

/// Checks are evaluated at the revision their consistency demands, and answered as the model
/// says at that revision.
fn checks_are_right(evidence: &Evidence) -> Vec<String> {
    let (events, model) = (evidence.events, &evidence.model);
    let head = evidence.head;
    let mut violations = Vec::new();
    let acknowledged: Vec<(std::time::Duration, Revision)> = events
        .iter()
        .filter_map(|e| match e {
            Event::Write {
                end, result: Ok(r), ..
            } => Some((*end, *r)),
            _ => None,
        })
        .collect();
    for event in events {
        let Event::Check {
            start,
            consistency,
            document,
            user,
            result: Ok((allowed, checked_at)),
            ..
        } = event
        else {
            continue;
        };
        if *checked_at > head {
            violations.push(format!(
                "checked at revision {checked_at}, past every replica's head {head}: {event}"
            ));
            continue;
        }
        match consistency {
            Consistency::AtLeastAsFresh(token) if checked_at < token => violations.push(format!(
                "stale read (New Enemy): checked before its token's revision: {event}"
            )),
            Consistency::AtExactSnapshot(token) if checked_at != token => violations.push(format!(
                "at_exact_snapshot not evaluated at its token's revision: {event}"
            )),
            Consistency::FullyConsistent => {
                let newest_before = acknowledged
                    .iter()
                    .filter(|(end, _)| end < start)
                    .map(|(_, r)| *r)
                    .max()
                    .unwrap_or(0);
                if *checked_at < newest_before {
                    violations.push(format!(
                        "fully consistent read missed write {newest_before} acknowledged before it began: {event}"
                    ));
                }
            }
            _ => {}
        }
        if model.can_view(*checked_at, document, user) != *allowed {
            violations.push(format!(
                "wrong answer: the model at revision {checked_at} says {}: {event}",
                !allowed
            ));
        }
    }

    violations
}

/// Watch: ordered, without duplicates, without gaps, with exactly the committed changes.
fn watch_is_exact(evidence: &Evidence) -> Vec<String> {
    let (events, history) = (evidence.events, &evidence.history);
    let mut violations = Vec::new();
    let watched: Vec<(Revision, &Vec<(Update, String)>)> = events
        .iter()
        .filter_map(|e| match e {
            Event::Watched {
                revision, updates, ..
            } => Some((*revision, updates)),
            _ => None,
        })
        .collect();
    let changed: BTreeMap<Revision, Vec<(Update, String)>> = history
        .iter()
        .filter(|(_, changes)| !changes.is_empty())
        .map(|(revision, changes)| {
            let mut updates: Vec<(Update, String)> = changes
                .iter()
                .map(|c| match c {
                    Change::Touch(r) => (Update::Touch, r.to_string()),
                    Change::Delete(r) => (Update::Delete, r.to_string()),
                })
                .collect();
            updates.sort();
            (*revision, updates)
        })
        .collect();
    // Consecutive responses, within a watcher's run of resumptions (it starts afresh, from the
    // head, when garbage collection passed its cursor).
    let mut consecutive = Vec::new();
    let mut previous: Option<Revision> = None;
    for event in events {
        match event {
            Event::WatchStarted { after: None, .. } => previous = None,
            Event::Watched { revision, .. } => {
                if let Some(before) = previous {
                    consecutive.push((before, *revision));
                }
                previous = Some(*revision);
            }
            _ => {}
        }
    }
    for (before, after) in consecutive {
        if after <= before {
            violations.push(format!(
                "watch went from revision {before} to {after}: out of order or repeated"
            ));
        }
        if let Some((missed, _)) = changed.range(before + 1..after).next() {
            violations.push(format!(
                "watch skipped revision {missed} (between {before} and {after})"
            ));
        }
    }
    for (revision, updates) in &watched {
        if changed.get(revision) != Some(*updates) {
            violations.push(format!(
                "watch reported {updates:?} at revision {revision}; committed: {:?}",
                changed.get(revision)
            ));
        }
    }

    violations
}

/// On each node, a read that starts after another ended is not evaluated at an older revision.
fn reads_never_go_back(evidence: &Evidence) -> Vec<String> {
    let events = evidence.events;
    let mut violations = Vec::new();
    let mut by_node: BTreeMap<usize, Vec<(std::time::Duration, std::time::Duration, Revision)>> =
        BTreeMap::new();
    for event in events {
        if let Event::Check {
            node,
            start,
            end,
            result: Ok((_, checked_at)),
            consistency:
                Consistency::MinimizeLatency
                | Consistency::FullyConsistent
                | Consistency::AtLeastAsFresh(_),
            ..
        } = event
        {
            by_node
                .entry(*node)
                .or_default()
                .push((*start, *end, *checked_at));
        }
    }
    for (node, reads) in by_node {
        for earlier in &reads {
            for later in &reads {
                if earlier.1 < later.0 && later.2 < earlier.2 {
                    violations.push(format!(
                        "node {node} went back in time: a read at revision {} after one at {}",
                        later.2, earlier.2
                    ));
                }
            }
        }
    }
    violations
}

/// The other writes to `key`'s relationship that may share the log entry of `write`, which was
/// acknowledged at `revision`: the leader groups concurrent writes into one entry, applied in an
/// order no client sees, and only the group's net effect is visible at its revision. Those are
/// the writes acknowledged at the same revision, and those of unknown fate that began before
/// `write` ended.
fn group_mates<'a>(
    events: &'a [Event],
    write: &'a Event,
    revision: Revision,
    key: &'a Relationship,
) -> impl Iterator<Item = &'a Event> + 'a {
    let ended = match write {
        Event::Write { end, .. } => *end,
        _ => std::time::Duration::ZERO,
    };
    events.iter().filter(move |other| {
        let Event::Write {
            start,
            relationship,
            result,
            ..
        } = other
        else {
            return false;
        };
        let shares_entry = match result {
            Ok(r) => *r == revision,
            Err(code) => !definite(*code) && *start < ended,
        };
        !std::ptr::eq(*other, write) && shares_entry && key_text(relationship) == key_text(key)
    })
}

/// Whether the state at `revision` is what `write` leaves when it comes last in its group.
fn left_its_mark(model: &Model, revision: Revision, write: &Event) -> bool {
    let Event::Write {
        update,
        relationship,
        ..
    } = write
    else {
        return false;
    };
    match update {
        // What expired by the revision's time is absent, stored or not.
        Update::Delete => !model.live(revision, model.time(revision), relationship),
        Update::Create | Update::Touch => {
            model.stored(revision).get(&key_text(relationship)) == Some(relationship)
        }
    }
}

/// Failures that say a write was not applied; any other failure (UNAVAILABLE, a deadline, a
/// broken connection) leaves its fate unknown.
fn definite(code: tonic::Code) -> bool {
    use tonic::Code::*;
    matches!(
        code,
        InvalidArgument
            | FailedPrecondition
            | AlreadyExists
            | NotFound
            | OutOfRange
            | PermissionDenied
            | Unauthenticated
            | ResourceExhausted
    )
}

/// The change a write makes to the history, as the history names it.
fn change_of(update: Update, relationship: &Relationship) -> (Update, String) {
    match update {
        Update::Create | Update::Touch => (Update::Touch, relationship.to_string()),
        Update::Delete => (Update::Delete, key_text(relationship)),
    }
}

/// A write answered with a definite failure is not in the history (checked where no other
/// write asked for the same change: every create, and touches and deletes nobody repeated).
fn refused_writes_left_no_trace(evidence: &Evidence) -> Vec<String> {
    let (events, history) = (evidence.events, &evidence.history);
    let mut asked: BTreeMap<(Update, String), usize> = BTreeMap::new();
    for event in events {
        if let Event::Write {
            update,
            relationship,
            ..
        } = event
        {
            *asked.entry(change_of(*update, relationship)).or_default() += 1;
        }
    }
    let made: BTreeMap<(Update, String), Revision> = history
        .iter()
        .flat_map(|(revision, changes)| {
            changes.iter().map(move |change| {
                let named = match change {
                    Change::Touch(r) => (Update::Touch, r.to_string()),
                    Change::Delete(r) => (Update::Delete, key_text(r)),
                };
                (named, *revision)
            })
        })
        .collect();
    let mut violations = Vec::new();
    for event in events {
        let Event::Write {
            update,
            relationship,
            result: Err(code),
            ..
        } = event
        else {
            continue;
        };
        let change = change_of(*update, relationship);
        if !definite(*code) || asked.get(&change) != Some(&1) || *code == tonic::Code::AlreadyExists
        {
            continue;
        }
        if let Some(revision) = made.get(&change) {
            violations.push(format!(
                "a write answered {code:?} was applied anyway, at revision {revision}: {event}"
            ));
        }
    }
    violations
}

/// What the operations that completed by each point in time had seen: (end, revision), in order
/// of end, with the running maximum.
fn seen_by(events: &[Event]) -> Vec<(std::time::Duration, Revision)> {
    let mut seen: Vec<(std::time::Duration, Revision)> = events
        .iter()
        .filter_map(|e| match e {
            Event::Write {
                end, result: Ok(r), ..
            } => Some((*end, *r)),
            Event::Check {
                end,
                result: Ok((_, r)),
                ..
            } => Some((*end, *r)),
            _ => None,
        })
        .collect();
    seen.sort();
    let mut newest = 0;
    for entry in &mut seen {
        newest = newest.max(entry.1);
        entry.1 = newest;
    }
    seen
}

/// The newest revision any operation that completed before `at` had seen.
fn newest_seen_before(
    seen: &[(std::time::Duration, Revision)],
    at: std::time::Duration,
) -> Revision {
    let completed = seen.partition_point(|(end, _)| *end < at);
    completed.checked_sub(1).map_or(0, |i| seen[i].1)
}

/// A `fully_consistent` read is not older than anything completed before it began (a write or
/// a read, on any node); a read without a token (or with one) is not older than anything
/// completed the staleness bound before it began.
fn reads_see_what_completed_before_them(evidence: &Evidence) -> Vec<String> {
    let events = evidence.events;
    let seen = seen_by(events);
    let mut violations = Vec::new();
    for event in events {
        let Event::Check {
            start,
            consistency,
            result: Ok((_, checked_at)),
            ..
        } = event
        else {
            continue;
        };
        let (before, what) = match consistency {
            Consistency::FullyConsistent => (*start, "began"),
            Consistency::MinimizeLatency | Consistency::AtLeastAsFresh(_) => (
                start.saturating_sub(crate::MAX_STALENESS),
                "began, less the staleness bound",
            ),
            Consistency::AtExactSnapshot(_) => continue,
        };
        let newest = newest_seen_before(&seen, before);
        if *checked_at < newest {
            violations.push(format!(
                "a read at revision {checked_at} missed revision {newest}, seen by an operation that completed before it {what}: {event}"
            ));
        }
    }
    violations
}

/// How much measurement uncertainty and latency the clock checks allow beyond the bounds.
const CLOCK_SLACK: std::time::Duration = std::time::Duration::from_millis(300);

/// The log's time stays within the clock bound of real time: an acknowledged write's revision
/// is stamped within the bound of the real time it was in flight; a `fully_consistent` read
/// is evaluated at a time no older than the clock bound plus a clock tick before it began (so
/// expirations take effect within that bound).
fn log_time_follows_real_time(evidence: &Evidence) -> Vec<String> {
    let (events, model) = (evidence.events, &evidence.model);
    let bound = crate::MAX_CLOCK_OFFSET + CLOCK_SLACK;
    let mut violations = Vec::new();
    for event in events {
        match event {
            Event::Write {
                start,
                end,
                result: Ok(revision),
                ..
            } => {
                let time = model.time(*revision);
                let earliest = crate::real_time(*start) - bound;
                let latest = crate::real_time(*end) + bound;
                if time < earliest || time > latest {
                    violations.push(format!(
                        "the log's time at revision {revision} is {} s off the real time of the write: {event}",
                        offset_seconds(time, crate::real_time(*start))
                    ));
                }
            }
            Event::Check {
                start,
                consistency: Consistency::FullyConsistent,
                result: Ok((_, checked_at)),
                ..
            } => {
                let time = model.time(*checked_at);
                if time < crate::real_time(*start) - bound - crate::CLOCK_TICK {
                    violations.push(format!(
                        "a fully consistent read judged expirations at a time {} s before it began: {event}",
                        -offset_seconds(time, crate::real_time(*start))
                    ));
                }
            }
            _ => {}
        }
    }
    violations
}

/// `a − b` in seconds.
fn offset_seconds(a: SystemTime, b: SystemTime) -> f64 {
    match a.duration_since(b) {
        Ok(ahead) => ahead.as_secs_f64(),
        Err(behind) => -behind.duration().as_secs_f64(),
    }
}

/// What one replica's datastore remembers of its state digests, and whether its state machine
/// found its state diverged from the leader's.
pub struct ReplicaDigests {
    pub node: usize,
    pub digests: Vec<(Revision, pemba_store::StateDigest)>,
    pub divergence: Option<pemba_raft::Divergence>,
}

/// Replicas hold the same state at the same revision: no node found its state diverged from
/// the leader's checkpoints, and the digests every two nodes remember of one revision are equal.
pub fn replicas_agree(replicas: &[ReplicaDigests]) -> Vec<String> {
    let mut violations = Vec::new();
    for replica in replicas {
        if let Some(divergence) = &replica.divergence {
            violations.push(format!(
                "node {} found its state diverged from the leader's: {divergence}",
                replica.node
            ));
        }
    }
    let mut first: BTreeMap<Revision, (usize, pemba_store::StateDigest)> = BTreeMap::new();
    for replica in replicas {
        for (revision, digest) in &replica.digests {
            match first.get(revision) {
                Some((other, theirs)) if theirs != digest => {
                    violations.push(format!(
                        "state digests differ at revision {revision}: node {} has {digest}, node {other} {theirs}; the replicas diverged",
                        replica.node
                    ));
                    return violations;
                }
                Some(_) => {}
                None => {
                    first.insert(*revision, (replica.node, *digest));
                }
            }
        }
    }
    violations
}
