//! OpenFGA as a benchmark target: the document-sharing schema translated to an OpenFGA
//! authorization model, and `authzed.api.v1` requests translated to OpenFGA's gRPC calls
//! (`openfga.v1.OpenFGAService`, from our own wire-compatible `proto/openfga/v1`).
//!
//! The translation is exact for this schema: OpenFGA has every construct it uses (direct
//! relations with type restrictions, subject sets `group#member`, the wildcard `user:*`,
//! tuple-to-userset for `parent->view`, and `but not` for the exclusion of banned users).
//! OpenFGA has no ZedTokens: a fully consistent request becomes `HIGHER_CONSISTENCY`, the others
//! `MINIMIZE_LATENCY`.

use std::collections::HashMap;
use std::sync::Arc;

use anyhow::Context;
use pemba_proto::authzed::api::v1 as api;
use tonic::transport::Channel;

use crate::target::{authorized, status_text};

/// Generated from `proto/openfga/v1/openfga.proto`.
#[allow(clippy::all, missing_docs)]
pub mod proto {
    tonic::include_proto!("openfga.v1");
}

use proto::open_fga_service_client::OpenFgaServiceClient;
use proto::userset::Userset as Rewrite;
use proto::{ConsistencyPreference, RelationReference, TypeDefinition, Userset};

/// A connected OpenFGA store holding the document-sharing model.
#[derive(Clone)]
pub struct OpenFga {
    channel: Channel,
    key: Arc<str>,
    store: Arc<str>,
    model: Arc<str>,
}

fn this() -> Userset {
    Userset {
        userset: Some(Rewrite::This(proto::DirectUserset {})),
    }
}

fn computed(relation: &str) -> Userset {
    Userset {
        userset: Some(Rewrite::ComputedUserset(proto::ObjectRelation {
            object: String::new(),
            relation: relation.into(),
        })),
    }
}

/// `computed from tupleset` (SpiceDB's `tupleset->computed`).
fn arrow(tupleset: &str, computed: &str) -> Userset {
    let relation = |r: &str| proto::ObjectRelation {
        object: String::new(),
        relation: r.into(),
    };
    Userset {
        userset: Some(Rewrite::TupleToUserset(proto::TupleToUserset {
            tupleset: Some(relation(tupleset)),
            computed_userset: Some(relation(computed)),
        })),
    }
}

fn union(children: Vec<Userset>) -> Userset {
    Userset {
        userset: Some(Rewrite::Union(proto::Usersets { child: children })),
    }
}

fn but_not(base: Userset, subtract: Userset) -> Userset {
    Userset {
        userset: Some(Rewrite::Difference(Box::new(proto::Difference {
            base: Some(Box::new(base)),
            subtract: Some(Box::new(subtract)),
        }))),
    }
}

/// A type a relation may hold directly: `type`, `type#relation` or `type:*`.
fn allowed(reference: &str) -> RelationReference {
    use proto::relation_reference::RelationOrWildcard;
    let (kind, rest) = match reference.split_once(['#', ':']) {
        Some((kind, "*")) => (kind, Some(RelationOrWildcard::Wildcard(proto::Wildcard {}))),
        Some((kind, relation)) => (kind, Some(RelationOrWildcard::Relation(relation.into()))),
        None => (reference, None),
    };
    RelationReference {
        r#type: kind.into(),
        relation_or_wildcard: rest,
    }
}

/// One type: its relations' rewrites and, for direct relations, the types they may hold.
fn definition(kind: &str, relations: Vec<(&str, Userset, &[&str])>) -> TypeDefinition {
    let mut rewrites = HashMap::new();
    let mut metadata = HashMap::new();
    for (name, rewrite, direct) in relations {
        rewrites.insert(name.to_string(), rewrite);
        metadata.insert(
            name.to_string(),
            proto::RelationMetadata {
                directly_related_user_types: direct.iter().map(|r| allowed(r)).collect(),
            },
        );
    }
    TypeDefinition {
        r#type: kind.into(),
        relations: rewrites,
        metadata: Some(proto::Metadata {
            relations: metadata,
        }),
    }
}

/// [`pemba_benches::DOCUMENT_SHARING_SCHEMA`] as an OpenFGA model (schema 1.1):
///
/// ```text
/// type user
/// type group
///   relations define member: [user, group#member]
/// type folder
///   relations
///     define parent: [folder]
///     define viewer: [user, group#member]
///     define view: viewer or view from parent
/// type document
///   relations
///     define parent: [folder]
///     define viewer: [user, user:*, group#member]
///     define banned: [user]
///     define view: (viewer or view from parent) but not banned
/// ```
pub fn document_sharing_model() -> Vec<TypeDefinition> {
    let viewer_or_parent = || union(vec![computed("viewer"), arrow("parent", "view")]);
    vec![
        definition("user", vec![]),
        definition(
            "group",
            vec![("member", this(), &["user", "group#member"][..])],
        ),
        definition(
            "folder",
            vec![
                ("parent", this(), &["folder"][..]),
                ("viewer", this(), &["user", "group#member"][..]),
                ("view", viewer_or_parent(), &[][..]),
            ],
        ),
        definition(
            "document",
            vec![
                ("parent", this(), &["folder"][..]),
                ("viewer", this(), &["user", "user:*", "group#member"][..]),
                ("banned", this(), &["user"][..]),
                (
                    "view",
                    but_not(viewer_or_parent(), computed("banned")),
                    &[][..],
                ),
            ],
        ),
    ]
}

fn object(reference: &api::ObjectReference) -> String {
    format!("{}:{}", reference.object_type, reference.object_id)
}

fn subject(reference: &api::SubjectReference) -> String {
    let object = reference.object.as_ref().map(object).unwrap_or_default();
    match reference.optional_relation.as_str() {
        "" => object,
        relation => format!("{object}#{relation}"),
    }
}

/// OpenFGA's nearest consistency: `HIGHER_CONSISTENCY` for a fully consistent request (or one
/// with a token, which OpenFGA cannot honour otherwise), else `MINIMIZE_LATENCY`.
fn consistency(requested: Option<&api::Consistency>) -> i32 {
    use api::consistency::Requirement;
    match requested.and_then(|c| c.requirement.as_ref()) {
        Some(Requirement::FullyConsistent(true) | Requirement::AtLeastAsFresh(_)) => {
            ConsistencyPreference::HigherConsistency as i32
        }
        _ => ConsistencyPreference::MinimizeLatency as i32,
    }
}

impl OpenFga {
    /// Connects to `channel`, creates a store named `name` and writes the document-sharing
    /// model into it.
    pub async fn create(channel: Channel, key: &str, name: &str) -> anyhow::Result<OpenFga> {
        let mut fga = OpenFga {
            channel,
            key: key.into(),
            store: "".into(),
            model: "".into(),
        };
        let store = fga
            .client()
            .create_store(fga.authorized(proto::CreateStoreRequest { name: name.into() }))
            .await
            .context("creating an OpenFGA store")?
            .into_inner()
            .id;
        fga.store = store.into();
        let request = proto::WriteAuthorizationModelRequest {
            store_id: fga.store.to_string(),
            type_definitions: document_sharing_model(),
            schema_version: "1.1".into(),
        };
        let model = fga
            .client()
            .write_authorization_model(fga.authorized(request))
            .await
            .context("writing the document-sharing model to OpenFGA")?
            .into_inner()
            .authorization_model_id;
        fga.model = model.into();
        Ok(fga)
    }

    fn client(&self) -> OpenFgaServiceClient<Channel> {
        OpenFgaServiceClient::new(self.channel.clone())
    }

    fn authorized<T>(&self, message: T) -> tonic::Request<T> {
        authorized(message, &self.key)
    }

    /// Writes the TOUCHes of `request` as tuples (duplicates ignored, as a TOUCH would).
    pub async fn write(&self, request: api::WriteRelationshipsRequest) -> Result<(), String> {
        let tuple_keys = request
            .updates
            .iter()
            .filter_map(|update| update.relationship.as_ref())
            .map(|r| proto::TupleKey {
                user: r.subject.as_ref().map(subject).unwrap_or_default(),
                relation: r.relation.clone(),
                object: r.resource.as_ref().map(object).unwrap_or_default(),
            })
            .collect();
        let request = proto::WriteRequest {
            store_id: self.store.to_string(),
            writes: Some(proto::WriteRequestWrites {
                tuple_keys,
                on_duplicate: "ignore".into(),
            }),
            authorization_model_id: self.model.to_string(),
        };
        self.client()
            .write(self.authorized(request))
            .await
            .map(|_| ())
            .map_err(status_text)
    }

    /// Checks; answers with `authzed.api.v1`'s permissionship.
    pub async fn check(&self, request: api::CheckPermissionRequest) -> Result<i32, String> {
        let check = proto::CheckRequest {
            store_id: self.store.to_string(),
            tuple_key: Some(proto::CheckRequestTupleKey {
                user: request.subject.as_ref().map(subject).unwrap_or_default(),
                relation: request.permission.clone(),
                object: request.resource.as_ref().map(object).unwrap_or_default(),
            }),
            authorization_model_id: self.model.to_string(),
            consistency: consistency(request.consistency.as_ref()),
        };
        let allowed = self
            .client()
            .check(self.authorized(check))
            .await
            .map_err(status_text)?
            .into_inner()
            .allowed;
        Ok(if allowed {
            api::check_permission_response::Permissionship::HasPermission as i32
        } else {
            api::check_permission_response::Permissionship::NoPermission as i32
        })
    }

    /// ListObjects for a LookupResources request: the ids of the objects found.
    pub async fn list_objects(
        &self,
        request: api::LookupResourcesRequest,
    ) -> Result<Vec<String>, String> {
        let list = proto::ListObjectsRequest {
            store_id: self.store.to_string(),
            authorization_model_id: self.model.to_string(),
            r#type: request.resource_object_type.clone(),
            relation: request.permission.clone(),
            user: request.subject.as_ref().map(subject).unwrap_or_default(),
            consistency: consistency(request.consistency.as_ref()),
        };
        let objects = self
            .client()
            .list_objects(self.authorized(list))
            .await
            .map_err(status_text)?
            .into_inner()
            .objects;
        Ok(objects
            .into_iter()
            .map(|o| match o.split_once(':') {
                Some((_, id)) => id.to_string(),
                None => o,
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relation_references_name_a_type_a_subject_set_or_a_wildcard() {
        use proto::relation_reference::RelationOrWildcard;
        assert_eq!(allowed("user").relation_or_wildcard, None);
        assert_eq!(
            allowed("group#member").relation_or_wildcard,
            Some(RelationOrWildcard::Relation("member".into()))
        );
        let wildcard = allowed("user:*");
        assert_eq!(wildcard.r#type, "user");
        assert_eq!(
            wildcard.relation_or_wildcard,
            Some(RelationOrWildcard::Wildcard(proto::Wildcard {}))
        );
    }

    #[test]
    fn subjects_translate_to_openfga_users() {
        let reference = |kind: &str, id: &str, relation: &str| api::SubjectReference {
            object: Some(api::ObjectReference {
                object_type: kind.into(),
                object_id: id.into(),
            }),
            optional_relation: relation.into(),
        };
        assert_eq!(subject(&reference("user", "u1", "")), "user:u1");
        assert_eq!(
            subject(&reference("group", "g1", "member")),
            "group:g1#member"
        );
        assert_eq!(subject(&reference("user", "*", "")), "user:*");
    }
}
