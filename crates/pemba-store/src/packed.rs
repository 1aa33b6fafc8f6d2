//! Names packed into one short byte string, so that the index compares a key by reading
//! contiguous bytes (stored inline when short) instead of following a pointer to each name.

use pemba_types::{ObjectRef, Relationship, SubjectRef};
use smallvec::SmallVec;

/// Names joined by NUL, which no object type, id or relation contains: the bytes order as the
/// names do, one after the other (`("ab", "c") < ("abc", "")`), and a subject without relation
/// orders before the same object with one, as [`SubjectRef`] orders.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct Packed(SmallVec<[u8; 46]>);

impl Packed {
    fn of(names: &[&str]) -> Packed {
        let mut bytes = SmallVec::new();
        for (i, name) in names.iter().enumerate() {
            if i > 0 {
                bytes.push(0);
            }
            bytes.extend_from_slice(name.as_bytes());
        }
        Packed(bytes)
    }

    /// `resource#relation`.
    pub(crate) fn resource_relation(resource: &ObjectRef, relation: &str) -> Packed {
        Packed::of(&[&resource.object_type, &resource.object_id, relation])
    }

    /// A subject object: where its keys in subject order ([`Packed::by_subject`]) begin.
    pub(crate) fn subject_object(object: &ObjectRef) -> Packed {
        Packed::of(&[&object.object_type, &object.object_id])
    }

    /// True if this key in subject order is one of `object`'s (from
    /// [`Packed::subject_object`]).
    pub(crate) fn has_object_prefix(&self, object: &Packed) -> bool {
        self.0.len() > object.0.len()
            && self.0.starts_with(&object.0)
            && self.0[object.0.len()] == 0
    }

    /// A relationship's key in subject order: subject object, resource, relation, then the
    /// subject's relation if any.
    pub(crate) fn by_subject(r: &Relationship) -> Packed {
        let (subject, resource) = (&r.subject.object, &r.resource);
        let mut names = vec![
            subject.object_type.as_str(),
            &subject.object_id,
            &resource.object_type,
            &resource.object_id,
            &r.relation,
        ];
        names.extend(r.subject.relation.as_deref());
        Packed::of(&names)
    }

    /// A subject: its object, and its relation if any.
    pub(crate) fn subject(subject: &SubjectRef) -> Packed {
        let object = &subject.object;
        match &subject.relation {
            Some(relation) => Packed::of(&[&object.object_type, &object.object_id, relation]),
            None => Packed::of(&[&object.object_type, &object.object_id]),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_in_subject_order_find_a_subject_objects_relationships() {
        let object = ObjectRef::new("user", "ann");
        let start = Packed::subject_object(&object);
        let ours = [
            "doc:a#viewer@user:ann",
            "doc:a#viewer@user:ann#member",
            "group:g#member@user:ann",
        ];
        let others = ["doc:a#viewer@user:anna", "doc:a#viewer@user:an"];
        for text in ours {
            let key = Packed::by_subject(&Relationship::parse(text).unwrap());
            assert!(key > start && key.has_object_prefix(&start), "{text}");
        }
        for text in others {
            let key = Packed::by_subject(&Relationship::parse(text).unwrap());
            assert!(!key.has_object_prefix(&start), "{text}");
        }
    }

    #[test]
    fn packed_subjects_order_as_subjects_do() {
        let subjects = [
            "user:a",
            "user:a#member",
            "user:ab",
            "user:b",
            "users:a",
            "group:eng#member",
            "group:eng",
            "group:en#member",
            "user:*",
        ]
        .map(|s| {
            let (object, relation) = match s.split_once('#') {
                Some((o, r)) => (o, Some(r.to_string())),
                None => (s, None),
            };
            let (t, id) = object.split_once(':').unwrap();
            SubjectRef::new(ObjectRef::new(t, id), relation)
        });
        for a in &subjects {
            for b in &subjects {
                assert_eq!(
                    Packed::subject(a).cmp(&Packed::subject(b)),
                    a.cmp(b),
                    "{a} vs {b}"
                );
            }
        }
    }
}
