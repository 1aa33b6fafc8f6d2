//! LookupSubjects' sets of subjects: concrete ids and, optionally, the wildcard `*` minus some
//! excluded ids, each holding as far as its caveats hold ([`Truth`]), combined with SpiceDB's
//! algebra.
//!
//! As in SpiceDB, a concrete id stays listed with its own truth even when the wildcard covers it
//! (a caveated `user:tom` next to an uncaveated `user:*` is listed as conditional), and a wildcard
//! keeps the ids it excludes with how surely each is excluded.

use std::collections::BTreeMap;

use pemba_caveats::Truth;
use pemba_types::WILDCARD_ID;

use crate::Permissionship;

/// One subject found by LookupSubjects: an id, or `*` with the subjects it excludes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FoundSubject {
    pub subject_id: String,
    /// Whether the subject has the permission or may have it, depending on caveat context. For
    /// an excluded subject: whether it is excluded for sure, or depending on context.
    pub permissionship: Permissionship,
    /// Only ever non-empty for the wildcard.
    pub excluded_subjects: Vec<FoundSubject>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Wildcard {
    truth: Truth,
    /// Excluded ids with how surely each is excluded; never `Truth::False`.
    excluded: BTreeMap<String, Truth>,
}

impl Wildcard {
    /// How far the wildcard grants `id`.
    fn grants(&self, id: &str) -> Truth {
        let excluded = self.excluded.get(id).cloned().unwrap_or(Truth::False);
        self.truth.clone().and(!excluded)
    }
}

/// Subjects with truths; nothing in it is ever `Truth::False` (such entries are dropped).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct SubjectSet {
    concrete: BTreeMap<String, Truth>,
    wildcard: Option<Wildcard>,
}

fn insert_or(map: &mut BTreeMap<String, Truth>, id: &str, truth: Truth) {
    if truth == Truth::False {
        return;
    }
    let combined = match map.remove(id) {
        Some(previous) => previous.or(truth),
        None => truth,
    };
    map.insert(id.to_string(), combined);
}

impl SubjectSet {
    pub fn is_empty(&self) -> bool {
        self.concrete.is_empty() && self.wildcard.is_none()
    }

    /// Adds one id (or the plain wildcard) holding as far as `truth`.
    pub fn add(&mut self, id: &str, truth: Truth) {
        if truth == Truth::False {
            return;
        }
        if id == WILDCARD_ID {
            self.union_wildcard(Wildcard {
                truth,
                excluded: BTreeMap::new(),
            });
        } else {
            insert_or(&mut self.concrete, id, truth);
        }
        self.unexclude_concretes();
    }

    /// Every member now holds only as far as `truth` also holds (the caveat of the relationship
    /// through which the set was reached).
    pub fn and_all(&mut self, truth: &Truth) {
        if *truth == Truth::True {
            return;
        }
        for value in self.concrete.values_mut() {
            *value = value.clone().and(truth.clone());
        }
        self.concrete.retain(|_, t| *t != Truth::False);
        if let Some(wildcard) = &mut self.wildcard {
            wildcard.truth = wildcard.truth.clone().and(truth.clone());
        }
        if self
            .wildcard
            .as_ref()
            .is_some_and(|w| w.truth == Truth::False)
        {
            self.wildcard = None;
        }
    }

    /// A union of wildcards excludes an id only as far as both exclude it.
    fn union_wildcard(&mut self, other: Wildcard) {
        self.wildcard = Some(match self.wildcard.take() {
            None => other,
            Some(mine) => Wildcard {
                truth: mine.truth.or(other.truth),
                excluded: mine
                    .excluded
                    .into_iter()
                    .filter_map(|(id, e)| {
                        let both = e.and(other.excluded.get(&id)?.clone());
                        (both != Truth::False).then_some((id, both))
                    })
                    .collect(),
            },
        });
    }

    pub fn union_with(&mut self, other: &SubjectSet) {
        for (id, truth) in &other.concrete {
            insert_or(&mut self.concrete, id, truth.clone());
        }
        if let Some(wildcard) = &other.wildcard {
            self.union_wildcard(wildcard.clone());
        }
        self.unexclude_concretes();
    }

    /// In a union, an id present as a concrete member is excluded from the wildcard only as far
    /// as it is not a member.
    fn unexclude_concretes(&mut self) {
        let Some(wildcard) = &mut self.wildcard else {
            return;
        };
        let concrete = &self.concrete;
        wildcard.excluded = std::mem::take(&mut wildcard.excluded)
            .into_iter()
            .filter_map(|(id, e)| {
                let member = concrete.get(&id).cloned().unwrap_or(Truth::False);
                let still = e.and(!member);
                (still != Truth::False).then_some((id, still))
            })
            .collect();
    }

    /// How far this set grants `id`: its own entry, else through the wildcard.
    fn grants(&self, id: &str) -> Truth {
        let concrete = self.concrete.get(id).cloned().unwrap_or(Truth::False);
        let wildcard = self
            .wildcard
            .as_ref()
            .map_or(Truth::False, |w| w.grants(id));
        concrete.or(wildcard)
    }

    pub fn intersect_with(&mut self, other: &SubjectSet) {
        let mut concrete = BTreeMap::new();
        for (id, truth) in &self.concrete {
            insert_or(&mut concrete, id, truth.clone().and(other.grants(id)));
        }
        for (id, truth) in &other.concrete {
            if !self.concrete.contains_key(id) {
                let through_wildcard = self
                    .wildcard
                    .as_ref()
                    .map_or(Truth::False, |w| w.grants(id));
                insert_or(&mut concrete, id, truth.clone().and(through_wildcard));
            }
        }
        self.wildcard = match (self.wildcard.take(), &other.wildcard) {
            (Some(mine), Some(theirs)) => {
                let truth = mine.truth.and(theirs.truth.clone());
                let mut excluded = mine.excluded;
                for (id, e) in &theirs.excluded {
                    insert_or(&mut excluded, id, e.clone());
                }
                (truth != Truth::False).then_some(Wildcard { truth, excluded })
            }
            _ => None,
        };
        self.concrete = concrete;
    }

    pub fn subtract(&mut self, other: &SubjectSet) {
        let mut concrete = BTreeMap::new();
        for (id, truth) in &self.concrete {
            insert_or(&mut concrete, id, truth.clone().and(!other.grants(id)));
        }
        if let Some(mine) = self.wildcard.take() {
            // Ids the subtracted wildcard excludes may remain, through this wildcard.
            if let Some(theirs) = &other.wildcard {
                for (id, e) in &theirs.excluded {
                    let remaining = mine
                        .grants(id)
                        .and(e.clone())
                        .and(!other.concrete.get(id).cloned().unwrap_or(Truth::False));
                    insert_or(&mut concrete, id, remaining);
                }
            }
            let truth = match &other.wildcard {
                Some(theirs) => mine.truth.and(!theirs.truth.clone()),
                None => mine.truth,
            };
            let mut excluded = mine.excluded;
            for (id, b) in &other.concrete {
                insert_or(&mut excluded, id, b.clone());
            }
            if truth != Truth::False {
                self.wildcard = Some(Wildcard { truth, excluded });
            }
        }
        self.concrete = concrete;
    }

    /// The members in SpiceDB's order of ids, the wildcard sorting as `*`.
    pub fn into_found(self) -> Vec<FoundSubject> {
        let found_one = |subject_id: String, truth: Truth| FoundSubject {
            subject_id,
            permissionship: truth.into(),
            excluded_subjects: Vec::new(),
        };
        let mut found: Vec<FoundSubject> = self
            .concrete
            .into_iter()
            .map(|(id, truth)| found_one(id, truth))
            .collect();
        if let Some(wildcard) = self.wildcard {
            found.push(FoundSubject {
                excluded_subjects: wildcard
                    .excluded
                    .into_iter()
                    .map(|(id, truth)| found_one(id, truth))
                    .collect(),
                ..found_one(WILDCARD_ID.to_string(), wildcard.truth)
            });
        }
        found.sort_by(|a, b| a.subject_id.cmp(&b.subject_id));
        found
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;
    use crate::tests::show_found;

    fn partial() -> Truth {
        Truth::Partial(BTreeSet::from(["x".to_string()]))
    }

    /// `tom` is true, `tom?` partial; `*-{a,b?}` a wildcard excluding a surely and b partly.
    fn set(text: &str) -> SubjectSet {
        let mut s = SubjectSet::default();
        for item in text.split_whitespace() {
            let truth = |t: &str| {
                if t.ends_with('?') {
                    partial()
                } else {
                    Truth::True
                }
            };
            let (id, excluded) = match item.split_once("-{") {
                Some((id, rest)) => (id, rest.trim_end_matches('}')),
                None => (item, ""),
            };
            s.add(id.trim_end_matches('?'), truth(id));
            if let Some(w) = &mut s.wildcard {
                for e in excluded.split(',').filter(|e| !e.is_empty()) {
                    w.excluded
                        .insert(e.trim_end_matches('?').to_string(), truth(e));
                }
            }
        }
        s
    }

    fn show(s: &SubjectSet) -> String {
        show_found(&s.clone().into_found()).join(" ")
    }

    #[test]
    fn union_keeps_concretes_and_shrinks_exclusions() {
        let mut a = set("*-{tom,sam}");
        a.union_with(&set("tom"));
        assert_eq!(show(&a), "*-{sam} tom");
        let mut b = set("*-{sam,ann}");
        b.union_with(&set("*-{ann,joe}"));
        assert_eq!(show(&b), "*-{ann}");
        let mut c = set("* tom?");
        c.union_with(&set("sam"));
        assert_eq!(show(&c), "* sam tom?", "a concrete id keeps its own truth");
    }

    #[test]
    fn intersection_with_wildcards() {
        let mut a = set("*-{bad}");
        a.intersect_with(&set("tom bad"));
        assert_eq!(show(&a), "tom");
        let mut b = set("*-{x}");
        b.intersect_with(&set("*-{y} z"));
        assert_eq!(show(&b), "*-{x,y} z");
        let mut c = set("tom");
        c.intersect_with(&set("sam"));
        assert!(c.is_empty());
        let mut d = set("tom? sam");
        d.intersect_with(&set("*-{sam?}"));
        assert_eq!(show(&d), "sam? tom?");
    }

    #[test]
    fn subtraction_with_wildcards_and_caveats() {
        let mut a = set("* tom");
        a.subtract(&set("tom sam"));
        assert_eq!(show(&a), "*-{sam,tom}");
        let mut b = set("*-{ann} tom");
        b.subtract(&set("*-{tom,sam,ann}"));
        assert_eq!(show(&b), "sam tom");
        let mut c = set("tom");
        c.subtract(&set("*"));
        assert!(c.is_empty());
        let mut d = set("tom sam");
        d.subtract(&set("tom?"));
        assert_eq!(show(&d), "sam tom?");
        let mut e = set("*");
        e.subtract(&set("bob?"));
        assert_eq!(show(&e), "*-{bob?}");
    }
}
