//! Several commands in one revision answer and change exactly what the same commands applied
//! one revision each would: random command streams, applied both ways, compared command by
//! command and revision by revision.

mod support;

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use pemba_store::{
    Change, Datastore, MemoryPersistence, Outcome, Precondition, RelationshipFilter, SubjectFilter,
    UpdateOperation, WriteCommand,
};
use pemba_types::Relationship;
use support::Draw;

const SCHEMA: &str = "definition user {}\n\ndefinition document {\n    relation viewer: user\n    relation editor: user\n}\n";
/// Drops `editor`: refused while an editor relationship exists.
const NARROW_SCHEMA: &str =
    "definition user {}\n\ndefinition document {\n    relation viewer: user\n}\n";

impl Draw {
    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len() as u64) as usize]
    }

    fn relationship(&mut self) -> Relationship {
        let text = format!(
            "document:{}#{}@user:{}",
            self.pick(&["a", "b", "c"]),
            self.pick(&["viewer", "viewer", "editor"]),
            self.pick(&["tom", "sam", "ann"]),
        );
        Relationship::parse(&text).expect("generated relationships parse")
    }

    fn filter(&mut self) -> RelationshipFilter {
        let mut filter = RelationshipFilter {
            resource_type: Some("document".into()),
            ..Default::default()
        };
        match self.below(3) {
            0 => filter.resource_id = Some(self.pick(&["a", "b", "c"]).into()),
            1 => filter.relation = Some(self.pick(&["viewer", "editor"]).into()),
            _ => {
                filter.subject = Some(SubjectFilter {
                    subject_type: "user".into(),
                    subject_id: Some(self.pick(&["tom", "sam", "ann"]).into()),
                    relation: None,
                })
            }
        }
        filter
    }

    fn preconditions(&mut self) -> Vec<Precondition> {
        (0..self.below(3).saturating_sub(1))
            .map(|_| Precondition {
                must_match: self.below(2) == 0,
                filter: self.filter(),
            })
            .collect()
    }

    fn command(&mut self) -> WriteCommand {
        match self.below(12) {
            0..=6 => {
                let operations = [
                    UpdateOperation::Create,
                    UpdateOperation::Touch,
                    UpdateOperation::Delete,
                ];
                WriteCommand::Relationships {
                    updates: (0..=self.below(3))
                        .map(|_| (operations[self.below(3) as usize], self.relationship()))
                        .collect(),
                    preconditions: self.preconditions(),
                }
            }
            7 | 8 => WriteCommand::DeleteByFilter {
                filter: self.filter(),
                preconditions: self.preconditions(),
                limit: [None, Some(1), Some(2)][self.below(3) as usize],
                allow_partial: self.below(2) == 0,
            },
            9 | 10 => WriteCommand::Import {
                relationships: (0..=self.below(2)).map(|_| self.relationship()).collect(),
            },
            _ => WriteCommand::Schema {
                text: [SCHEMA, NARROW_SCHEMA][self.below(2) as usize].to_string(),
            },
        }
    }
}

fn at() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_000)
}

fn open() -> Datastore {
    let store = Datastore::open(Box::new(MemoryPersistence::default())).expect("opens");
    let schema = WriteCommand::Schema {
        text: SCHEMA.to_string(),
    };
    store.apply(1, at(), &schema).expect("the schema applies");
    store
}

/// Every relationship live at `revision`, by key.
fn state(store: &Datastore, revision: u64) -> BTreeMap<String, Relationship> {
    store
        .snapshot(revision)
        .expect("readable")
        .query(&RelationshipFilter::default(), None, usize::MAX)
        .expect("readable")
        .into_iter()
        .map(|r| (format!("{}#{}@{}", r.resource, r.relation, r.subject), r))
        .collect()
}

/// An outcome without its revision, comparable across the two stores.
fn answer(outcome: &Outcome) -> Result<(u64, bool), String> {
    outcome
        .as_ref()
        .map(|w| (w.count, w.partial))
        .map_err(|e| e.to_string())
}

/// The net change from `before` to `after`, as a watcher sees it.
fn diff(
    before: &BTreeMap<String, Relationship>,
    after: &BTreeMap<String, Relationship>,
) -> Vec<String> {
    let mut changes: Vec<String> = after
        .iter()
        .filter(|(key, r)| before.get(*key) != Some(r))
        .map(|(_, r)| format!("touch {r}"))
        .chain(
            before
                .iter()
                .filter(|(key, _)| !after.contains_key(*key))
                .map(|(_, r)| format!("delete {r}")),
        )
        .collect();
    changes.sort();
    changes
}

fn described(changes: &[Change]) -> Vec<String> {
    let mut described: Vec<String> = changes
        .iter()
        .map(|change| match change {
            Change::Touch(r) => format!("touch {r}"),
            Change::Delete(r) => format!("delete {r}"),
        })
        .collect();
    described.sort();
    described
}

fn run(seed: u64) {
    let mut draw = Draw(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    let one_by_one = open();
    let grouped = open();
    let mut one_revision = 1;
    for group_revision in 2..40 {
        let commands: Vec<WriteCommand> = (0..=draw.below(5)).map(|_| draw.command()).collect();
        let before = state(&one_by_one, one_revision);
        let mut expected = Vec::new();
        for command in &commands {
            one_revision += 1;
            let outcomes = one_by_one
                .apply_entry(one_revision, at(), &[command], |_| Ok(Vec::new()))
                .expect("applies");
            expected.push(answer(&outcomes[0]));
        }
        let refs: Vec<&WriteCommand> = commands.iter().collect();
        let outcomes = grouped
            .apply_entry(group_revision, at(), &refs, |_| Ok(Vec::new()))
            .expect("applies");
        let got: Vec<_> = outcomes.iter().map(answer).collect();
        assert_eq!(
            got, expected,
            "seed {seed}, revision {group_revision}: {commands:?}"
        );
        let after = state(&one_by_one, one_revision);
        assert_eq!(state(&grouped, group_revision), after, "seed {seed}");
        let changed = grouped.changes_after(group_revision - 1).expect("readable");
        let changes = changed.first().map_or(&[][..], |(_, c)| c.as_slice());
        assert_eq!(described(changes), diff(&before, &after), "seed {seed}");
    }
}

#[test]
fn a_group_of_commands_in_one_revision_acts_as_the_commands_one_by_one() {
    for seed in 1..=200 {
        run(seed);
    }
}

#[test]
fn a_later_command_in_the_revision_sees_an_earlier_ones_effects() {
    let store = open();
    let tom = Relationship::parse("document:a#viewer@user:tom").expect("parses");
    let create = WriteCommand::Relationships {
        updates: vec![(UpdateOperation::Create, tom.clone())],
        preconditions: Vec::new(),
    };
    let guarded_delete = WriteCommand::DeleteByFilter {
        filter: RelationshipFilter {
            resource_type: Some("document".into()),
            ..Default::default()
        },
        preconditions: vec![Precondition {
            must_match: true,
            filter: RelationshipFilter {
                resource_id: Some("a".into()),
                ..Default::default()
            },
        }],
        limit: None,
        allow_partial: false,
    };
    let outcomes = store
        .apply_entry(2, at(), &[&create, &create, &guarded_delete], |_| {
            Ok(Vec::new())
        })
        .expect("applies");
    assert_eq!(answer(&outcomes[0]), Ok((0, false)));
    // The second CREATE finds the first one's relationship.
    assert!(answer(&outcomes[1]).is_err_and(|e| e.contains("already existed")));
    // The delete's precondition holds thanks to the first CREATE, and it removes that one.
    assert_eq!(answer(&outcomes[2]), Ok((1, false)));
    assert!(state(&store, 2).is_empty());
    // Created and deleted in one revision: watchers see no change at all.
    assert!(store.changes_after(1).expect("readable")[0].1.is_empty());
}
