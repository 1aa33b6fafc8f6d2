//! Sets of subject ids with an optional wildcard, and SpiceDB's algebra over them.
//!
//! A set holds concrete ids and, optionally, the wildcard `*` minus some excluded ids. Concrete ids
//! stay listed even when the wildcard covers them, as SpiceDB's LookupSubjects lists them.

use std::collections::BTreeSet;

use pemba_types::WILDCARD_ID;

/// One subject found by LookupSubjects: an id, or `*` with the ids it excludes.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct FoundSubject {
    pub subject_id: String,
    /// Only ever non-empty for the wildcard.
    pub excluded_subject_ids: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct SubjectSet {
    concrete: BTreeSet<String>,
    /// `Some(excluded)` when the set contains the wildcard.
    wildcard: Option<BTreeSet<String>>,
}

impl SubjectSet {
    pub fn is_empty(&self) -> bool {
        self.concrete.is_empty() && self.wildcard.is_none()
    }

    /// Adds one id (or the plain wildcard).
    pub fn add(&mut self, id: &str) {
        if id == WILDCARD_ID {
            // Union with a plain wildcard: nothing stays excluded.
            self.wildcard = Some(BTreeSet::new());
        } else {
            if let Some(excluded) = &mut self.wildcard {
                excluded.remove(id);
            }
            self.concrete.insert(id.to_string());
        }
    }

    pub fn union_with(&mut self, other: &SubjectSet) {
        for id in &other.concrete {
            self.add(id);
        }
        if let Some(other_excluded) = &other.wildcard {
            let excluded = match &self.wildcard {
                // Excluded from the union only if excluded from both wildcards.
                Some(mine) => mine.intersection(other_excluded).cloned().collect(),
                None => other_excluded.clone(),
            };
            // ... and not present as a concrete member of the union.
            self.wildcard = Some(
                excluded
                    .into_iter()
                    .filter(|id| !self.concrete.contains(id))
                    .collect(),
            );
        }
    }

    fn wildcard_allows(&self, id: &str) -> bool {
        self.wildcard
            .as_ref()
            .is_some_and(|excluded| !excluded.contains(id))
    }

    pub fn intersect_with(&mut self, other: &SubjectSet) {
        let mut concrete: BTreeSet<String> = self
            .concrete
            .iter()
            .filter(|id| other.concrete.contains(*id) || other.wildcard_allows(id))
            .cloned()
            .collect();
        concrete.extend(
            other
                .concrete
                .iter()
                .filter(|id| self.wildcard_allows(id))
                .cloned(),
        );
        self.wildcard = match (&self.wildcard, &other.wildcard) {
            (Some(mine), Some(theirs)) => Some(mine.union(theirs).cloned().collect()),
            _ => None,
        };
        self.concrete = concrete;
    }

    pub fn subtract(&mut self, other: &SubjectSet) {
        match &other.wildcard {
            Some(other_excluded) => {
                // Only what the other wildcard excludes survives.
                self.concrete
                    .retain(|id| other_excluded.contains(id) && !other.concrete.contains(id));
                if let Some(mine) = self.wildcard.take() {
                    let revived = other_excluded
                        .iter()
                        .filter(|id| !mine.contains(*id) && !other.concrete.contains(*id));
                    self.concrete.extend(revived.cloned());
                }
            }
            None => {
                for id in &other.concrete {
                    self.concrete.remove(id);
                    if let Some(excluded) = &mut self.wildcard {
                        excluded.insert(id.clone());
                    }
                }
            }
        }
    }

    /// The members in SpiceDB's order of ids, the wildcard sorting as `*`.
    pub fn into_found(self) -> Vec<FoundSubject> {
        let mut found: Vec<FoundSubject> = self
            .concrete
            .into_iter()
            .map(|subject_id| FoundSubject {
                subject_id,
                excluded_subject_ids: Vec::new(),
            })
            .collect();
        if let Some(excluded) = self.wildcard {
            found.push(FoundSubject {
                subject_id: WILDCARD_ID.to_string(),
                excluded_subject_ids: excluded.into_iter().collect(),
            });
        }
        found.sort();
        found
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(ids: &[&str]) -> SubjectSet {
        let mut s = SubjectSet::default();
        for id in ids {
            s.add(id);
        }
        s
    }

    fn wildcard_minus(excluded: &[&str], concrete: &[&str]) -> SubjectSet {
        let mut s = set(concrete);
        s.wildcard = Some(excluded.iter().map(|e| e.to_string()).collect());
        s
    }

    fn show(s: &SubjectSet) -> String {
        s.clone()
            .into_found()
            .iter()
            .map(|f| {
                if f.excluded_subject_ids.is_empty() {
                    f.subject_id.clone()
                } else {
                    format!("{}-{{{}}}", f.subject_id, f.excluded_subject_ids.join(","))
                }
            })
            .collect::<Vec<_>>()
            .join(" ")
    }

    #[test]
    fn union_keeps_concretes_and_shrinks_exclusions() {
        let mut a = wildcard_minus(&["tom", "sam"], &[]);
        a.union_with(&set(&["tom"]));
        assert_eq!(show(&a), "* -{sam} tom".replace(" -", "-"));
        let mut b = wildcard_minus(&["sam", "ann"], &[]);
        b.union_with(&wildcard_minus(&["ann", "joe"], &[]));
        assert_eq!(show(&b), "*-{ann}");
    }

    #[test]
    fn intersection_with_wildcards() {
        let mut a = wildcard_minus(&["bad"], &[]);
        a.intersect_with(&set(&["tom", "bad"]));
        assert_eq!(show(&a), "tom");
        let mut b = wildcard_minus(&["x"], &[]);
        b.intersect_with(&wildcard_minus(&["y"], &["z"]));
        assert_eq!(show(&b), "*-{x,y} z");
        let mut c = set(&["tom"]);
        c.intersect_with(&set(&["sam"]));
        assert!(c.is_empty());
    }

    #[test]
    fn subtraction_with_wildcards() {
        let mut a = wildcard_minus(&[], &["tom"]);
        a.subtract(&set(&["tom", "sam"]));
        assert_eq!(show(&a), "*-{sam,tom}");
        let mut b = wildcard_minus(&["ann"], &["tom"]);
        b.subtract(&wildcard_minus(&["tom", "sam", "ann"], &[]));
        assert_eq!(show(&b), "sam tom");
        let mut c = set(&["tom"]);
        c.subtract(&wildcard_minus(&[], &[]));
        assert!(c.is_empty());
    }
}
