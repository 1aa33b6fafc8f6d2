//! Planning: what the commands of one revision will change, decided against the head state.
//!
//! A revision may carry several commands (a replicated log entry that groups concurrent
//! writes). They are planned in order, each against the head state with the effects of the
//! ones before it: the outcome of each, and the revision's net changes, are exactly those of
//! applying the commands one after another, except that all of them share one revision. A
//! refused command contributes nothing, and the others are planned as if it were absent.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, LazyLock};

use pemba_engine::{validate_deletion, validate_relationship};
use pemba_schema::CompiledSchema;
use pemba_types::Relationship;

use crate::command::{UpdateOperation, WriteCommand, WriteError};
use crate::datastore::SchemaVersion;
use crate::filter::{Precondition, RelationshipFilter};
use crate::index::{key_of, Change, ReadAt, RelationshipIndex, RelationshipKey};
use crate::schema_change::check_schema_change;

/// The schema in force before any is written.
pub(crate) static EMPTY_SCHEMA: LazyLock<CompiledSchema> =
    LazyLock::new(|| CompiledSchema::new(Vec::new(), Vec::new(), false));

/// What one command does, once planned: how many relationships it removed (delete by filter)
/// or wrote (import), and whether a delete by filter stopped at its limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Effect {
    pub count: u64,
    pub partial: bool,
}

/// The plan of one revision's commands.
pub(crate) struct Plan {
    /// Each command's effect or refusal, in order.
    pub outcomes: Vec<Result<Effect, WriteError>>,
    /// The net change to each relationship the commands touched, in the order the keys were
    /// first touched; keys that end as they were at the head are left out.
    pub changes: Vec<Change>,
    /// The newest schema the commands wrote, if any did.
    pub schema: Option<Arc<SchemaVersion>>,
}

/// The head state with the effects of the commands planned so far laid over it.
struct Pending<'a> {
    index: &'a RelationshipIndex,
    head: ReadAt,
    schema: Option<Arc<SchemaVersion>>,
    written_schema: Option<Arc<SchemaVersion>>,
    /// Each key a command changed, with what is live there now (`None`: nothing).
    overlay: BTreeMap<RelationshipKey, Option<Arc<Relationship>>>,
    /// The overlay's keys in the order they were first changed.
    order: Vec<RelationshipKey>,
}

/// Plans `commands` as the next revision, whose time is `head.time`: relationships expired then
/// count as absent (to preconditions, CREATE, DELETE and schema changes alike). `schema` is the
/// schema in force at the head.
pub(crate) fn plan(
    index: &RelationshipIndex,
    head: ReadAt,
    schema: Option<Arc<SchemaVersion>>,
    commands: &[&WriteCommand],
) -> Plan {
    let mut pending = Pending {
        index,
        head,
        schema,
        written_schema: None,
        overlay: BTreeMap::new(),
        order: Vec::new(),
    };
    let outcomes = commands
        .iter()
        .map(|command| pending.plan_one(command))
        .collect();
    Plan {
        outcomes,
        changes: pending.net_changes(),
        schema: pending.written_schema,
    }
}

impl Pending<'_> {
    fn compiled_schema(&self) -> &CompiledSchema {
        self.schema
            .as_ref()
            .map(|s| &s.compiled)
            .unwrap_or(&EMPTY_SCHEMA)
    }

    /// What is live at `key` now.
    fn visible(&self, key: &RelationshipKey) -> Option<Arc<Relationship>> {
        match self.overlay.get(key) {
            Some(now) => now.clone(),
            None => self.index.visible(key, self.head).cloned(),
        }
    }

    /// Up to `limit` relationships matching `filter` live now, in key order.
    fn query(&self, filter: &RelationshipFilter, limit: usize) -> Vec<Arc<Relationship>> {
        let stored = self
            .index
            .query(
                filter,
                self.head,
                None,
                limit.saturating_add(self.overlay.len()),
            )
            .into_iter()
            .filter(|r| !self.overlay.contains_key(&key_of(r)))
            .map(Arc::new);
        let changed = self
            .overlay
            .values()
            .flatten()
            .filter(|r| filter.matches(r))
            .cloned();
        let mut found: Vec<_> = stored.chain(changed).collect();
        found.sort_by_key(|r| key_of(r));
        found.truncate(limit);
        found
    }

    /// The first relationship (in key order) live now of `resource_type` (or any) for which
    /// `predicate` holds.
    fn find(
        &self,
        resource_type: Option<&str>,
        predicate: &dyn Fn(&Relationship) -> bool,
    ) -> Option<Relationship> {
        let of_type = |r: &Relationship| resource_type.is_none_or(|t| r.resource.object_type == t);
        let changed = self
            .overlay
            .values()
            .flatten()
            .find(|r| of_type(r) && predicate(r))
            .map(|r| r.as_ref().clone());
        let stored = self.index.find(resource_type, self.head, |r| {
            !self.overlay.contains_key(&key_of(r)) && predicate(r)
        });
        // The first in key order, as the index alone would find it.
        changed.into_iter().chain(stored).min_by_key(key_of)
    }

    fn check_preconditions(&self, preconditions: &[Precondition]) -> Result<(), WriteError> {
        for p in preconditions {
            if self.query(&p.filter, 1).is_empty() == p.must_match {
                return Err(WriteError::PreconditionFailed(Box::new(p.clone())));
            }
        }
        Ok(())
    }

    /// Plans one command against the state now and, unless it is refused, lays its effect over
    /// that state.
    fn plan_one(&mut self, command: &WriteCommand) -> Result<Effect, WriteError> {
        let (changes, effect) = match command {
            WriteCommand::Relationships {
                updates,
                preconditions,
            } => (self.relationships(updates, preconditions)?, Effect::NONE),
            WriteCommand::DeleteByFilter {
                filter,
                preconditions,
                limit,
                allow_partial,
            } => self.delete_by_filter(filter, preconditions, *limit, *allow_partial)?,
            WriteCommand::Import { relationships } => self.import(relationships)?,
            WriteCommand::Schema { text } => {
                let schema = self.schema_change(text)?;
                self.schema = Some(schema.clone());
                self.written_schema = Some(schema);
                (Vec::new(), Effect::NONE)
            }
        };
        for change in changes {
            let key = key_of(change.relationship());
            let now = match change {
                Change::Touch(r) => Some(r),
                Change::Delete(_) => None,
            };
            if self.overlay.insert(key.clone(), now).is_none() {
                self.order.push(key);
            }
        }
        Ok(effect)
    }

    fn relationships(
        &self,
        updates: &[(UpdateOperation, Relationship)],
        preconditions: &[Precondition],
    ) -> Result<Vec<Change>, WriteError> {
        let mut seen = BTreeSet::new();
        for (_, r) in updates {
            if !seen.insert(key_of(r)) {
                return Err(WriteError::DuplicateUpdate(r.to_string()));
            }
        }
        let schema = self.compiled_schema();
        for (operation, r) in updates {
            match operation {
                UpdateOperation::Delete => validate_deletion(schema, r)?,
                _ => validate_relationship(schema, r)?,
            }
        }
        self.check_preconditions(preconditions)?;
        let mut changes = Vec::new();
        for (operation, r) in updates {
            let live = self.visible(&key_of(r));
            match operation {
                UpdateOperation::Create if live.is_some() => {
                    return Err(WriteError::AlreadyExists(r.to_string()))
                }
                // Touching a relationship exactly as it is stored changes nothing, so watchers
                // are not told of it (as in SpiceDB).
                UpdateOperation::Touch if live.as_deref() == Some(r) => {}
                UpdateOperation::Create | UpdateOperation::Touch => {
                    changes.push(Change::Touch(Arc::new(r.clone())))
                }
                UpdateOperation::Delete => changes.extend(live.map(Change::Delete)),
            }
        }
        Ok(changes)
    }

    fn delete_by_filter(
        &self,
        filter: &RelationshipFilter,
        preconditions: &[Precondition],
        limit: Option<u64>,
        allow_partial: bool,
    ) -> Result<(Vec<Change>, Effect), WriteError> {
        self.check_preconditions(preconditions)?;
        let take = limit
            .map(|l| usize::try_from(l).unwrap_or(usize::MAX).saturating_add(1))
            .unwrap_or(usize::MAX);
        let mut matching = self.query(filter, take);
        let mut partial = false;
        if let Some(limit) = limit {
            if matching.len() as u64 > limit {
                if !allow_partial {
                    return Err(WriteError::TooManyToDelete(limit));
                }
                matching.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
                partial = true;
            }
        }
        let effect = Effect {
            count: matching.len() as u64,
            partial,
        };
        Ok((matching.into_iter().map(Change::Delete).collect(), effect))
    }

    fn import(&self, relationships: &[Relationship]) -> Result<(Vec<Change>, Effect), WriteError> {
        let mut seen = BTreeSet::new();
        let schema = self.compiled_schema();
        for r in relationships {
            if !seen.insert(key_of(r)) {
                return Err(WriteError::DuplicateUpdate(r.to_string()));
            }
            validate_relationship(schema, r)?;
            if self.visible(&key_of(r)).is_some() {
                return Err(WriteError::AlreadyExists(r.to_string()));
            }
        }
        let effect = Effect {
            count: relationships.len() as u64,
            partial: false,
        };
        let changes = relationships
            .iter()
            .map(|r| Change::Touch(Arc::new(r.clone())))
            .collect();
        Ok((changes, effect))
    }

    fn schema_change(&self, text: &str) -> Result<Arc<SchemaVersion>, WriteError> {
        let compiled =
            pemba_schema::compile("schema", text).map_err(|e| WriteError::Schema(Box::new(e)))?;
        let find = |resource_type: Option<&str>, predicate: &dyn Fn(&Relationship) -> bool| {
            self.find(resource_type, predicate)
        };
        check_schema_change(self.compiled_schema(), &compiled, &find)
            .map_err(WriteError::SchemaOrphans)?;
        Ok(Arc::new(SchemaVersion {
            text: text.to_string(),
            compiled,
        }))
    }

    /// Each changed key's net change from the head: a touch of what is live there now, or a
    /// delete of what was live at the head; nothing for a key that ends as it began.
    fn net_changes(&self) -> Vec<Change> {
        let mut changes = Vec::with_capacity(self.order.len());
        for key in &self.order {
            let before = self.index.visible(key, self.head);
            match (&self.overlay[key], before) {
                (Some(now), Some(before)) if **now == **before => {}
                (Some(now), _) => changes.push(Change::Touch(now.clone())),
                (None, Some(before)) => changes.push(Change::Delete(before.clone())),
                (None, None) => {}
            }
        }
        changes
    }
}

impl Effect {
    const NONE: Effect = Effect {
        count: 0,
        partial: false,
    };
}
