//! A digest of what a datastore answers at a revision, for replicas to compare.
//!
//! The digest of revision `R` covers what every read at `R` sees: the relationships live at
//! `R` and not expired at `R`'s time (their keys, caveats with contexts, and expirations), and
//! the schema in force. It depends on that state only, not on how a replica reached it
//! (entries applied one by one, a snapshot installed, history garbage collected, a restart),
//! so replicas that hold the same state at `R` have the same digest, and replicas whose states
//! differ have different digests (but with negligible probability).
//!
//! It is kept incrementally: a wrapping sum of one 128-bit hash per visible relationship
//! (SipHash-1-3 with fixed keys: the same on every build and platform), plus the hash of the
//! schema in force (hashed once, when it comes in force). A relationship that expires leaves the sum at the first revision
//! whose time passes its expiration, as it leaves every read.

use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::hash::Hasher;
use std::time::SystemTime;

use pemba_types::{Relationship, Revision};
use serde::{Deserialize, Serialize};
use siphasher::sip128::{Hasher128, SipHasher13};

use crate::index::Version;

/// How many of the newest revisions' digests a datastore remembers.
pub const REMEMBERED_DIGESTS: usize = 4096;

/// What a replica's reads see at one revision, in 128 bits (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct StateDigest(pub u128);

impl fmt::Display for StateDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:032x}", self.0)
    }
}

fn hasher() -> SipHasher13 {
    SipHasher13::new_with_keys(0x7065_6d62_612d_6469, 0x6765_7374_2d76_3031)
}

/// A relationship's share of the sum: a hash of every field, each ended by a NUL (which no
/// name or id contains).
fn relationship_hash(r: &Relationship) -> u128 {
    let mut h = hasher();
    let subject = &r.subject;
    for field in [
        r.resource.object_type.as_str(),
        &r.resource.object_id,
        &r.relation,
        &subject.object.object_type,
        &subject.object.object_id,
        subject.relation.as_deref().unwrap_or(""),
    ] {
        h.write(field.as_bytes());
        h.write_u8(0);
    }
    if let Some(caveat) = &r.caveat {
        h.write(caveat.name.as_bytes());
        h.write_u8(0);
        for (key, value) in &caveat.context {
            h.write(key.as_bytes());
            h.write_u8(0);
            h.write(value.to_string().as_bytes());
            h.write_u8(0);
        }
    }
    if let Some(at) = r.expires_at {
        let since = at
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default();
        h.write_u64(since.as_secs());
        h.write_u32(since.subsec_nanos());
    }
    h.finish128().as_u128()
}

fn schema_hash(text: Option<&str>) -> u128 {
    let mut h = hasher();
    match text {
        Some(text) => {
            h.write_u8(1);
            h.write(text.as_bytes());
        }
        None => h.write_u8(0),
    }
    h.finish128().as_u128()
}

/// The running digest of a datastore and the digests of its newest revisions.
#[derive(Debug)]
pub(crate) struct Digests {
    /// The sum over the relationships visible at the head.
    sum: u128,
    /// The hash of the schema in force at the head (hashed once, when it comes in force).
    schema: u128,
    /// Visible relationships that will expire: (expiration, hash) → how many.
    expiring: BTreeMap<(SystemTime, u128), u32>,
    /// The newest revisions' digests, oldest first.
    recent: VecDeque<(Revision, StateDigest)>,
}

impl Default for Digests {
    fn default() -> Self {
        Digests {
            sum: 0,
            schema: schema_hash(None),
            expiring: BTreeMap::new(),
            recent: VecDeque::new(),
        }
    }
}

impl Digests {
    /// The digests of a state built whole: every key's version list, at revision `head` whose
    /// time is `time`.
    pub(crate) fn of_state<'a>(
        versions: impl Iterator<Item = &'a [Version]>,
        time: SystemTime,
    ) -> Digests {
        let mut digests = Digests::default();
        for list in versions {
            digests.add(live(list), time);
        }
        digests
    }

    /// Advances to a revision whose time is `time`: what expired before it leaves the sum.
    pub(crate) fn advance_time(&mut self, time: SystemTime) {
        while let Some(entry) = self.expiring.first_entry() {
            let (at, hash) = *entry.key();
            if at >= time {
                break;
            }
            self.sum = self
                .sum
                .wrapping_sub(hash.wrapping_mul(u128::from(*entry.get())));
            entry.remove();
        }
    }

    /// Replaces one key's version list `old` with `new`, at a revision whose time is `time`
    /// (after [`Digests::advance_time`] to it).
    pub(crate) fn replace(&mut self, old: &[Version], new: &[Version], time: SystemTime) {
        if let Some(r) = live(old) {
            if !r.is_expired_at(time) {
                self.remove(r);
            }
        }
        self.add(live(new), time);
    }

    /// From now on the schema in force is `text` (`None`: none yet).
    pub(crate) fn set_schema(&mut self, text: Option<&str>) {
        self.schema = schema_hash(text);
    }

    /// Records the digest of `revision`, the head, under the schema set last.
    pub(crate) fn record(&mut self, revision: Revision) {
        let digest = StateDigest(self.sum.wrapping_add(self.schema));
        if self.recent.back().is_some_and(|(r, _)| *r >= revision) {
            self.recent.retain(|(r, _)| *r < revision);
        }
        self.recent.push_back((revision, digest));
        if self.recent.len() > REMEMBERED_DIGESTS {
            self.recent.pop_front();
        }
    }

    /// The digest of `revision`, if it is among the remembered ones.
    pub(crate) fn at(&self, revision: Revision) -> Option<StateDigest> {
        let found = self
            .recent
            .binary_search_by_key(&revision, |(r, _)| *r)
            .ok()?;
        Some(self.recent[found].1)
    }

    /// Every remembered revision's digest, oldest first.
    pub(crate) fn recent(&self) -> Vec<(Revision, StateDigest)> {
        self.recent.iter().copied().collect()
    }

    /// The newest remembered revision and its digest.
    pub(crate) fn newest(&self) -> Option<(Revision, StateDigest)> {
        self.recent.back().copied()
    }

    fn add(&mut self, r: Option<&Relationship>, time: SystemTime) {
        let Some(r) = r.filter(|r| !r.is_expired_at(time)) else {
            return;
        };
        let hash = relationship_hash(r);
        self.sum = self.sum.wrapping_add(hash);
        if let Some(at) = r.expires_at {
            *self.expiring.entry((at, hash)).or_default() += 1;
        }
    }

    fn remove(&mut self, r: &Relationship) {
        let hash = relationship_hash(r);
        self.sum = self.sum.wrapping_sub(hash);
        if let Some(at) = r.expires_at {
            if let Some(count) = self.expiring.get_mut(&(at, hash)) {
                *count -= 1;
                if *count == 0 {
                    self.expiring.remove(&(at, hash));
                }
            }
        }
    }
}

/// The live version's relationship of a version list, if the key is live.
fn live(versions: &[Version]) -> Option<&Relationship> {
    versions
        .last()
        .filter(|v| v.deleted.is_none())
        .map(|v| v.relationship.as_ref())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;

    fn version(text: &str, created: Revision, deleted: Option<Revision>) -> Version {
        Version {
            created,
            deleted,
            relationship: Arc::new(Relationship::parse(text).unwrap()),
        }
    }

    fn at(seconds: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(seconds)
    }

    const EXPIRING: &str = "document:a#viewer@user:tom[expiration:2000-01-01T00:00:00Z]";

    #[test]
    fn the_same_state_reached_two_ways_has_the_same_digest() {
        let time = at(100);
        let alice = vec![version("document:a#viewer@user:alice", 1, None)];
        let bob_gone = vec![version("document:a#viewer@user:bob", 1, Some(2))];
        // Applied one by one: alice and bob written, then bob deleted.
        let mut applied = Digests::default();
        applied.replace(&[], &alice, time);
        applied.replace(&[], &[version("document:a#viewer@user:bob", 1, None)], time);
        applied.replace(
            &[version("document:a#viewer@user:bob", 1, None)],
            &bob_gone,
            time,
        );
        applied.set_schema(Some("definition user {}"));
        applied.record(2);
        // Built whole from the resulting version lists.
        let mut whole = Digests::of_state([&alice[..], &bob_gone[..]].into_iter(), time);
        whole.set_schema(Some("definition user {}"));
        whole.record(2);
        assert_eq!(applied.at(2), whole.at(2));
        // Another schema, or another relationship, is another digest.
        let mut other = Digests::of_state([&alice[..]].into_iter(), time);
        other.set_schema(Some("definition user {}\ndefinition document {}"));
        other.record(2);
        assert_ne!(other.at(2), whole.at(2));
        let none = Digests::of_state(std::iter::empty(), time);
        assert_ne!(none.sum, whole.sum);
    }

    #[test]
    fn an_expired_relationship_leaves_the_digest_when_time_passes_it() {
        let expiring = vec![version(EXPIRING, 1, None)];
        let expires = Relationship::parse(EXPIRING).unwrap().expires_at.unwrap();
        let before = expires - Duration::from_secs(1);
        let mut digests = Digests::default();
        digests.replace(&[], &expiring, before);
        assert_ne!(digests.sum, 0);
        digests.advance_time(expires);
        assert_ne!(digests.sum, 0, "an expiry exactly at the time still counts");
        digests.advance_time(expires + Duration::from_secs(1));
        assert_eq!(digests.sum, 0);
        // Deleting it afterwards takes nothing away twice.
        digests.replace(&expiring, &[], expires + Duration::from_secs(2));
        assert_eq!(digests.sum, 0);
        // A state built after the expiry never counted it.
        let whole = Digests::of_state(
            [&expiring[..]].into_iter(),
            expires + Duration::from_secs(1),
        );
        assert_eq!(whole.sum, 0);
    }

    #[test]
    fn only_the_newest_digests_are_remembered() {
        let mut digests = Digests::default();
        for revision in 1..=(REMEMBERED_DIGESTS as u64 + 10) {
            digests.record(revision);
        }
        assert_eq!(digests.at(1), None);
        assert!(digests.at(11).is_some());
        assert_eq!(
            digests.newest().map(|(r, _)| r),
            Some(REMEMBERED_DIGESTS as u64 + 10)
        );
    }
}
