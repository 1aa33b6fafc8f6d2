//! LookupSubjects' candidates: sets of subject ids with an optional wildcard, combined with
//! SpiceDB's algebra over them.
//!
//! A set holds concrete ids and, optionally, the wildcard `*` minus some excluded ids. Sets are
//! supersets: an id may be listed (or excluded) although caveats or other branches decide
//! otherwise, because LookupSubjects checks every listed id and every exclusion afterwards.
//! Concrete ids stay listed even when the wildcard covers them, as SpiceDB's LookupSubjects
//! lists them.

use std::collections::BTreeSet;

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
            self.concrete.insert(id.to_string());
        }
    }

    pub fn union_with(&mut self, other: &SubjectSet) {
        for id in &other.concrete {
            self.add(id);
        }
        if let Some(other_excluded) = &other.wildcard {
            // Excluded from the union only if excluded from both wildcards. An id also listed as
            // a concrete candidate stays excluded here: Check decides which of the two holds.
            self.wildcard = Some(match &self.wildcard {
                Some(mine) => mine.intersection(other_excluded).cloned().collect(),
                None => other_excluded.clone(),
            });
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

    /// The candidates that may remain after subtracting `other` when caveats can make either side
    /// conditional: nothing concrete is removed (Check decides each one), the wildcard keeps
    /// going but lists `other`'s concrete ids as exclusions, and the ids a subtracted wildcard
    /// excludes come back as concrete candidates.
    pub fn subtract_candidates(&mut self, other: &SubjectSet) {
        let Some(excluded) = &mut self.wildcard else {
            return;
        };
        excluded.extend(other.concrete.iter().cloned());
        if let Some(other_excluded) = &other.wildcard {
            self.concrete.extend(other_excluded.iter().cloned());
        }
    }

    /// The members in SpiceDB's order of ids, the wildcard sorting as `*`.
    pub fn into_found(self) -> Vec<FoundSubject> {
        let plain = |subject_id: String| FoundSubject {
            subject_id,
            permissionship: Permissionship::HasPermission,
            excluded_subjects: Vec::new(),
        };
        let mut found: Vec<FoundSubject> = self.concrete.into_iter().map(plain).collect();
        if let Some(excluded) = self.wildcard {
            found.push(FoundSubject {
                excluded_subjects: excluded.into_iter().map(plain).collect(),
                ..plain(WILDCARD_ID.to_string())
            });
        }
        found.sort_by(|a, b| a.subject_id.cmp(&b.subject_id));
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
                let excluded: Vec<&str> = f
                    .excluded_subjects
                    .iter()
                    .map(|e| e.subject_id.as_str())
                    .collect();
                if excluded.is_empty() {
                    f.subject_id.clone()
                } else {
                    format!("{}-{{{}}}", f.subject_id, excluded.join(","))
                }
            })
            .collect::<Vec<_>>()
            .join(" ")
    }

    #[test]
    fn union_keeps_candidates_and_shrinks_exclusions() {
        let mut a = wildcard_minus(&["tom", "sam"], &[]);
        a.union_with(&set(&["tom"]));
        assert_eq!(show(&a), "*-{sam,tom} tom");
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
    fn subtraction_candidates_keep_what_a_caveat_may_spare() {
        let mut a = wildcard_minus(&[], &["tom"]);
        a.subtract_candidates(&set(&["tom", "sam"]));
        assert_eq!(show(&a), "*-{sam,tom} tom");
        let mut b = wildcard_minus(&["ann"], &["tom"]);
        b.subtract_candidates(&wildcard_minus(&["tom", "sam", "ann"], &[]));
        assert_eq!(show(&b), "*-{ann} ann sam tom");
        let mut c = set(&["tom"]);
        c.subtract_candidates(&wildcard_minus(&[], &[]));
        assert_eq!(show(&c), "tom");
    }
}
