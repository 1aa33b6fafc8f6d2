//! Every subject reachable through a recursive expansion, with the relations where each was found:
//! what the `validation` section of a validation file lists as `[subject] is <object#relation>`.

use std::collections::{BTreeMap, BTreeSet};

use pemba_engine::{ExpandNode, ExpandTree, SetOperation};
use pemba_types::WILDCARD_ID;

/// `object#relation` strings where a subject was found directly.
type Sources = BTreeSet<String>;

/// Subjects of one (type, relation): concrete ids and an optional wildcard with exclusions.
#[derive(Debug, Clone, Default)]
struct TypedSubjects {
    concrete: BTreeMap<String, Sources>,
    wildcard: Option<(BTreeSet<String>, Sources)>,
}

impl TypedSubjects {
    fn wildcard_allows(&self, id: &str) -> bool {
        self.wildcard
            .as_ref()
            .is_some_and(|(excluded, _)| !excluded.contains(id))
    }

    fn union_with(&mut self, other: TypedSubjects) {
        for (id, sources) in other.concrete {
            if let Some((excluded, _)) = &mut self.wildcard {
                excluded.remove(&id);
            }
            self.concrete.entry(id).or_default().extend(sources);
        }
        if let Some((other_excluded, other_sources)) = other.wildcard {
            self.wildcard = Some(match self.wildcard.take() {
                Some((excluded, mut sources)) => {
                    sources.extend(other_sources);
                    (
                        excluded.intersection(&other_excluded).cloned().collect(),
                        sources,
                    )
                }
                None => {
                    let excluded = other_excluded
                        .into_iter()
                        .filter(|id| !self.concrete.contains_key(id))
                        .collect();
                    (excluded, other_sources)
                }
            });
        }
    }

    fn intersect_with(&mut self, other: &TypedSubjects) {
        let mut concrete = BTreeMap::new();
        for (id, sources) in &self.concrete {
            let matching = other.concrete.get(id).or(other
                .wildcard_allows(id)
                .then(|| &other.wildcard.as_ref().expect("allows").1));
            if let Some(other_sources) = matching {
                concrete.insert(id.clone(), sources.union(other_sources).cloned().collect());
            }
        }
        if let Some((_, wildcard_sources)) = &self.wildcard {
            for (id, sources) in &other.concrete {
                if self.wildcard_allows(id) {
                    let entry: &mut Sources = concrete.entry(id.clone()).or_default();
                    entry.extend(sources.iter().chain(wildcard_sources).cloned());
                }
            }
        }
        self.wildcard = match (self.wildcard.take(), &other.wildcard) {
            (Some((excluded, sources)), Some((other_excluded, other_sources))) => Some((
                excluded.union(other_excluded).cloned().collect(),
                sources.union(other_sources).cloned().collect(),
            )),
            _ => None,
        };
        self.concrete = concrete;
    }

    fn subtract(&mut self, other: &TypedSubjects) {
        match &other.wildcard {
            Some((other_excluded, _)) => {
                self.concrete.retain(|id, _| {
                    other_excluded.contains(id) && !other.concrete.contains_key(id)
                });
                if let Some((excluded, sources)) = self.wildcard.take() {
                    for id in other_excluded {
                        if !excluded.contains(id) && !other.concrete.contains_key(id) {
                            self.concrete
                                .entry(id.clone())
                                .or_default()
                                .extend(sources.iter().cloned());
                        }
                    }
                }
            }
            None => {
                for id in other.concrete.keys() {
                    self.concrete.remove(id);
                    if let Some((excluded, _)) = &mut self.wildcard {
                        excluded.insert(id.clone());
                    }
                }
            }
        }
    }
}

/// Found subjects keyed by (subject type, subject relation or `None` for the object itself).
#[derive(Debug, Clone, Default)]
pub struct Membership(BTreeMap<(String, Option<String>), TypedSubjects>);

/// One line of an expected-subjects list, normalised for comparison.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct MembershipEntry {
    /// `type:id`, `type:id#relation` or `type:*`.
    pub subject: String,
    /// Excluded `type:id`s of a wildcard, sorted.
    pub excluded: Vec<String>,
    /// `type:id#relation` where the subject was found, sorted.
    pub sources: Vec<String>,
}

impl Membership {
    /// Computes the membership of a recursively expanded tree.
    pub fn of(tree: &ExpandTree) -> Membership {
        match &tree.node {
            ExpandNode::Leaf { subjects } => {
                let source = format!("{}#{}", tree.object, tree.relation);
                let mut membership = Membership::default();
                for subject in subjects {
                    let key = (subject.object.object_type.clone(), subject.relation.clone());
                    let mut one = TypedSubjects::default();
                    let sources = Sources::from([source.clone()]);
                    if subject.is_wildcard() {
                        one.wildcard = Some((BTreeSet::new(), sources));
                    } else {
                        one.concrete
                            .insert(subject.object.object_id.clone(), sources);
                    }
                    membership.0.entry(key).or_default().union_with(one);
                }
                membership
            }
            ExpandNode::Intermediate {
                operation,
                children,
            } => {
                let mut children = children.iter().map(Membership::of);
                let mut result = children.next().unwrap_or_default();
                for child in children {
                    match operation {
                        SetOperation::Union => {
                            for (key, subjects) in child.0 {
                                result.0.entry(key).or_default().union_with(subjects);
                            }
                        }
                        SetOperation::Intersection => {
                            for (key, subjects) in result.0.iter_mut() {
                                subjects
                                    .intersect_with(&child.0.get(key).cloned().unwrap_or_default());
                            }
                        }
                        SetOperation::Exclusion => {
                            for (key, subjects) in result.0.iter_mut() {
                                if let Some(subtracted) = child.0.get(key) {
                                    subjects.subtract(subtracted);
                                }
                            }
                        }
                    }
                }
                result
            }
        }
    }

    /// The found subjects as comparable entries, sorted.
    pub fn entries(&self) -> Vec<MembershipEntry> {
        let mut entries = Vec::new();
        for ((object_type, relation), subjects) in &self.0 {
            let name = |id: &str| match relation {
                Some(r) => format!("{object_type}:{id}#{r}"),
                None => format!("{object_type}:{id}"),
            };
            for (id, sources) in &subjects.concrete {
                entries.push(MembershipEntry {
                    subject: name(id),
                    excluded: Vec::new(),
                    sources: sources.iter().cloned().collect(),
                });
            }
            if let Some((excluded, sources)) = &subjects.wildcard {
                entries.push(MembershipEntry {
                    subject: name(WILDCARD_ID),
                    excluded: excluded
                        .iter()
                        .map(|id| format!("{object_type}:{id}"))
                        .collect(),
                    sources: sources.iter().cloned().collect(),
                });
            }
        }
        entries.sort();
        entries
    }
}

/// Parses an expected-subject line: `[user:tom] is <document:1#viewer>/<document:1#editor>` or
/// `[user:* - {user:a, user:b}] is <…>`. Returns `None` if it has no `[subject]`.
pub fn parse_expected(line: &str) -> Option<MembershipEntry> {
    let line = line.trim();
    let rest = line.strip_prefix('[')?;
    let close = rest.find("] is").or_else(|| rest.rfind(']'))?;
    let subject_text = rest[..close].trim();
    let (subject, excluded) = match subject_text.split_once(" - ") {
        Some((subject, exclusions)) => {
            let exclusions = exclusions
                .trim()
                .trim_start_matches('{')
                .trim_end_matches('}');
            let mut excluded: Vec<String> = exclusions
                .split(',')
                .map(|e| e.trim().to_string())
                .filter(|e| !e.is_empty())
                .collect();
            excluded.sort();
            (subject.trim().to_string(), excluded)
        }
        None => (subject_text.to_string(), Vec::new()),
    };
    let subject = subject.strip_suffix("#...").unwrap_or(&subject).to_string();
    let mut sources = Vec::new();
    let mut remaining = &rest[close..];
    while let Some(start) = remaining.find('<') {
        let Some(end) = remaining[start..].find('>') else {
            break;
        };
        sources.push(remaining[start + 1..start + end].to_string());
        remaining = &remaining[start + end + 1..];
    }
    sources.sort();
    Some(MembershipEntry {
        subject,
        excluded,
        sources,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_expected_lines() {
        let entry = parse_expected(
            "[user:* - {user:b, user:a}] is <document:1#viewer>/<document:1#editor>",
        )
        .unwrap();
        assert_eq!(entry.subject, "user:*");
        assert_eq!(entry.excluded, ["user:a", "user:b"]);
        assert_eq!(entry.sources, ["document:1#editor", "document:1#viewer"]);
        let entry = parse_expected("[group:eng#member] is <document:1#viewer>").unwrap();
        assert_eq!(entry.subject, "group:eng#member");
        assert!(parse_expected("user:tom is <x#y>").is_none());
    }
}
