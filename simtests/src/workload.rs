//! The clients: writes and deletes of relationships (group memberships included, so revocations
//! happen), checks in every consistency mode carrying tokens between clients.

use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use pemba_proto::authzed::api::v1 as api;
use pemba_proto::authzed::api::v1::permissions_service_client::PermissionsServiceClient;
use pemba_proto::authzed::api::v1::schema_service_client::SchemaServiceClient;
use pemba_proto::authzed::api::v1::watch_service_client::WatchServiceClient;
use pemba_types::{Relationship, Revision};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tonic::transport::Channel;

use crate::history::{Consistency, Event, Update};
use crate::net;

/// Every client's API key.
pub const KEY: &str = "simulation-key";

pub const SCHEMA: &str = "use expiration

definition user {}

definition group {
    relation member: user | user with expiration
}

definition document {
    relation viewer: user | user with expiration | group#member | group#member with expiration
    permission view = viewer
}
";

pub const DOCUMENTS: usize = 3;
pub const USERS: usize = 3;
pub const GROUPS: usize = 2;

/// How long a client request may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(2);

/// What clients share: the history they record and the tokens they pass on.
#[derive(Default)]
pub struct Shared {
    pub events: Mutex<Vec<Event>>,
    /// Tokens seen by any client, with their revisions.
    pub tokens: Mutex<Vec<(Revision, api::ZedToken)>>,
}

fn request<T>(message: T) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    let value = format!("Bearer {KEY}").parse().expect("a header value");
    request.metadata_mut().insert("authorization", value);
    request.set_timeout(REQUEST_TIMEOUT);
    request
}

fn revision_of(token: Option<&api::ZedToken>) -> Option<Revision> {
    pemba_server::token::parse(&token?.token)
        .ok()
        .map(|(_, revision)| revision)
}

fn object(object_type: &str, id: &str) -> api::ObjectReference {
    api::ObjectReference {
        object_type: object_type.into(),
        object_id: id.into(),
    }
}

/// One client's API connections, one per node.
pub struct Client {
    pub id: usize,
    permissions: Vec<PermissionsServiceClient<Channel>>,
    schemas: Vec<SchemaServiceClient<Channel>>,
}

impl Client {
    pub fn connect(id: usize, nodes: &[String]) -> Client {
        let channels: Vec<Channel> = nodes
            .iter()
            .map(|host| net::channel(&format!("{host}:{}", crate::API_PORT)).expect("a channel"))
            .collect();
        Client {
            id,
            permissions: channels
                .iter()
                .cloned()
                .map(PermissionsServiceClient::new)
                .collect(),
            schemas: channels.into_iter().map(SchemaServiceClient::new).collect(),
        }
    }

    /// Writes the schema through `node`; returns its revision.
    pub async fn write_schema(&mut self, node: usize) -> Option<Revision> {
        let written = self.schemas[node]
            .write_schema(request(api::WriteSchemaRequest {
                schema: SCHEMA.into(),
            }))
            .await
            .ok()?;
        revision_of(written.into_inner().written_at.as_ref())
    }

    /// One write through `node`, recorded.
    pub async fn write(
        &mut self,
        shared: &Shared,
        node: usize,
        update: Update,
        relationship: Relationship,
        precondition: Option<(bool, Relationship)>,
    ) -> Result<Revision, tonic::Code> {
        let start = turmoil::elapsed();
        let operation = match update {
            Update::Create => api::relationship_update::Operation::Create,
            Update::Touch => api::relationship_update::Operation::Touch,
            Update::Delete => api::relationship_update::Operation::Delete,
        };
        let wire = pemba_proto::convert::relationship_to_api(&relationship);
        let optional_preconditions = precondition
            .iter()
            .map(|(must, r)| api::Precondition {
                operation: if *must {
                    api::precondition::Operation::MustMatch
                } else {
                    api::precondition::Operation::MustNotMatch
                } as i32,
                filter: Some(exactly(r)),
            })
            .collect();
        let answer = self.permissions[node]
            .write_relationships(request(api::WriteRelationshipsRequest {
                updates: vec![api::RelationshipUpdate {
                    operation: operation as i32,
                    relationship: Some(wire),
                }],
                optional_preconditions,
                ..Default::default()
            }))
            .await;
        let result = match answer {
            Ok(response) => {
                let token = response.into_inner().written_at;
                let revision = revision_of(token.as_ref()).ok_or(tonic::Code::Internal)?;
                if let Some(token) = token {
                    shared.tokens.lock().push((revision, token));
                }
                Ok(revision)
            }
            Err(status) => Err(status.code()),
        };
        shared.events.lock().push(Event::Write {
            client: self.id,
            node,
            start,
            end: turmoil::elapsed(),
            update,
            relationship,
            precondition: precondition.map(Box::new),
            result,
        });
        result
    }

    /// One check through `node`, recorded.
    pub async fn check(
        &mut self,
        shared: &Shared,
        node: usize,
        consistency: (Consistency, Option<api::ZedToken>),
        document: &str,
        user: &str,
    ) -> Result<(bool, Revision), tonic::Code> {
        use api::consistency::Requirement;
        let start = turmoil::elapsed();
        let (kind, token) = consistency;
        let requirement = match (kind, token) {
            (Consistency::AtLeastAsFresh(_), Some(t)) => Requirement::AtLeastAsFresh(t),
            (Consistency::AtExactSnapshot(_), Some(t)) => Requirement::AtExactSnapshot(t),
            (Consistency::FullyConsistent, _) => Requirement::FullyConsistent(true),
            _ => Requirement::MinimizeLatency(true),
        };
        let answer = self.permissions[node]
            .check_permission(request(api::CheckPermissionRequest {
                consistency: Some(api::Consistency {
                    requirement: Some(requirement),
                }),
                resource: Some(object("document", document)),
                permission: "view".into(),
                subject: Some(api::SubjectReference {
                    object: Some(object("user", user)),
                    optional_relation: String::new(),
                }),
                ..Default::default()
            }))
            .await;
        let result = match answer {
            Ok(response) => {
                let response = response.into_inner();
                let revision =
                    revision_of(response.checked_at.as_ref()).ok_or(tonic::Code::Internal)?;
                if let Some(token) = response.checked_at {
                    shared.tokens.lock().push((revision, token));
                }
                let allowed = response.permissionship
                    == api::check_permission_response::Permissionship::HasPermission as i32;
                Ok((allowed, revision))
            }
            Err(status) => Err(status.code()),
        };
        shared.events.lock().push(Event::Check {
            client: self.id,
            node,
            start,
            end: turmoil::elapsed(),
            consistency: kind,
            document: document.into(),
            user: user.into(),
            result,
        });
        result
    }
}

/// A filter matching exactly `r`.
fn exactly(r: &Relationship) -> api::RelationshipFilter {
    api::RelationshipFilter {
        resource_type: r.resource.object_type.clone(),
        optional_resource_id: r.resource.object_id.clone(),
        optional_relation: r.relation.clone(),
        optional_subject_filter: Some(api::SubjectFilter {
            subject_type: r.subject.object.object_type.clone(),
            optional_subject_id: r.subject.object.object_id.clone(),
            optional_relation: Some(api::subject_filter::RelationFilter {
                relation: r.subject.relation.clone().unwrap_or_default(),
            }),
        }),
        ..Default::default()
    }
}

fn random_relationship(rng: &mut ChaCha8Rng) -> Relationship {
    let text = match rng.gen_range(0..3) {
        0 => format!(
            "document:d{}#viewer@user:u{}",
            rng.gen_range(0..DOCUMENTS),
            rng.gen_range(0..USERS)
        ),
        1 => format!(
            "group:g{}#member@user:u{}",
            rng.gen_range(0..GROUPS),
            rng.gen_range(0..USERS)
        ),
        _ => format!(
            "document:d{}#viewer@group:g{}#member",
            rng.gen_range(0..DOCUMENTS),
            rng.gen_range(0..GROUPS)
        ),
    };
    Relationship::parse(&text).expect("a valid relationship")
}

/// Runs client `id` against `nodes` until `until` (simulated time).
pub async fn run_client(
    id: usize,
    seed: u64,
    nodes: Vec<String>,
    until: Duration,
    shared: Arc<Shared>,
) -> turmoil::Result {
    let mut rng = ChaCha8Rng::seed_from_u64(seed.wrapping_mul(31).wrapping_add(id as u64));
    let mut client = Client::connect(id, &nodes);
    // Every client writes the (same) schema first, so none starts before there is one.
    while client
        .write_schema(rng.gen_range(0..nodes.len()))
        .await
        .is_none()
    {
        if turmoil::elapsed() >= until {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut own_token: Option<(Revision, api::ZedToken)> = None;
    let mut created = 0;
    while turmoil::elapsed() < until {
        let node = rng.gen_range(0..nodes.len());
        if rng.gen_bool(0.4) {
            let (update, relationship) = match rng.gen_range(0..10) {
                // A relationship no other write names.
                0 => {
                    created += 1;
                    let text = format!("document:c{id}x{created}#viewer@user:u0");
                    (Update::Create, Relationship::parse(&text)?)
                }
                1..=5 => {
                    let mut relationship = random_relationship(&mut rng);
                    // One in three expires within three seconds (by the nodes' clock).
                    if rng.gen_bool(1.0 / 3.0) {
                        let lifetime = Duration::from_millis(rng.gen_range(0..3000));
                        relationship.expires_at = Some(crate::simulated_now() + lifetime);
                    }
                    (Update::Touch, relationship)
                }
                _ => (Update::Delete, random_relationship(&mut rng)),
            };
            let precondition = rng
                .gen_bool(0.2)
                .then(|| (rng.gen_bool(0.5), random_relationship(&mut rng)));
            let written = client
                .write(&shared, node, update, relationship, precondition)
                .await;
            if written.is_ok() {
                own_token = shared.tokens.lock().last().cloned();
            }
        } else {
            // A token of this client's own, or one passed on by another client.
            let token = if rng.gen_bool(0.6) {
                own_token.clone()
            } else {
                let tokens = shared.tokens.lock();
                (!tokens.is_empty()).then(|| tokens[rng.gen_range(0..tokens.len())].clone())
            };
            let consistency = match (rng.gen_range(0..4), token) {
                (0, _) | (1 | 2, None) => (Consistency::MinimizeLatency, None),
                (1, Some((revision, token))) => {
                    (Consistency::AtLeastAsFresh(revision), Some(token))
                }
                (2, Some((revision, token))) => {
                    (Consistency::AtExactSnapshot(revision), Some(token))
                }
                _ => (Consistency::FullyConsistent, None),
            };
            let document = format!("d{}", rng.gen_range(0..DOCUMENTS));
            let user = format!("u{}", rng.gen_range(0..USERS));
            let _ = client
                .check(&shared, node, consistency, &document, &user)
                .await;
        }
        tokio::time::sleep(Duration::from_millis(rng.gen_range(0..50))).await;
    }
    Ok(())
}

/// Watches relationship changes until `until`, moving to a random node every few seconds (or
/// when a stream fails) and resuming after the last revision received.
pub async fn run_watcher(
    seed: u64,
    nodes: Vec<String>,
    until: Duration,
    shared: Arc<Shared>,
) -> turmoil::Result {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x03a7_c4e5);
    let clients: Vec<WatchServiceClient<Channel>> = nodes
        .iter()
        .map(|host| {
            net::channel(&format!("{host}:{}", crate::API_PORT)).map(WatchServiceClient::new)
        })
        .collect::<Result<_, _>>()?;
    let mut last: Option<api::ZedToken> = None;
    // Start once the schema is there and something has been written.
    tokio::time::sleep(Duration::from_millis(500)).await;
    while turmoil::elapsed() < until {
        let node = rng.gen_range(0..nodes.len());
        let watch = request(api::WatchRequest {
            optional_start_cursor: last.clone(),
            ..Default::default()
        });
        // Each stream lasts a few seconds, then the watcher moves on.
        let stream_ends =
            tokio::time::Instant::now() + Duration::from_millis(rng.gen_range(1000..4000));
        let after = revision_of(last.as_ref());
        let started = clients[node].clone().watch(watch).await;
        shared.events.lock().push(Event::WatchStarted {
            node,
            at: turmoil::elapsed(),
            after,
            result: started.as_ref().map(|_| ()).map_err(|s| s.code()),
        });
        let stream = match started {
            Ok(stream) => stream,
            // Garbage collection passed the cursor: start afresh from the head.
            Err(status) if status.code() == tonic::Code::OutOfRange => {
                last = None;
                continue;
            }
            Err(_) => {
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let mut stream = stream.into_inner();
        let ends =
            stream_ends.min(tokio::time::Instant::now() + until.saturating_sub(turmoil::elapsed()));
        while let Ok(Ok(Some(response))) = tokio::time::timeout_at(ends, stream.message()).await {
            let Some(revision) = revision_of(response.changes_through.as_ref()) else {
                break;
            };
            let mut updates: Vec<(Update, String)> = response
                .updates
                .iter()
                .filter_map(|u| {
                    let relationship = text_of(u.relationship.as_ref()?)?;
                    let update = match api::relationship_update::Operation::try_from(u.operation) {
                        Ok(api::relationship_update::Operation::Delete) => Update::Delete,
                        _ => Update::Touch,
                    };
                    Some((update, relationship))
                })
                .collect();
            updates.sort();
            shared.events.lock().push(Event::Watched {
                node,
                at: turmoil::elapsed(),
                revision,
                updates,
            });
            last = response.changes_through;
        }
    }
    Ok(())
}

/// A wire relationship in the text syntax (`type:id#relation@type:id[#relation]`, with its
/// `[expiration:…]`).
fn text_of(r: &api::Relationship) -> Option<String> {
    let resource = r.resource.as_ref()?;
    let subject = r.subject.as_ref()?;
    let object = subject.object.as_ref()?;
    let relation = match subject.optional_relation.as_str() {
        "" => String::new(),
        relation => format!("#{relation}"),
    };
    let text = format!(
        "{}:{}#{}@{}:{}{relation}",
        resource.object_type, resource.object_id, r.relation, object.object_type, object.object_id
    );
    let mut relationship = Relationship::parse(&text).ok()?;
    relationship.expires_at = match &r.optional_expires_at {
        Some(t) => Some(
            std::time::UNIX_EPOCH
                + Duration::new(u64::try_from(t.seconds).ok()?, u32::try_from(t.nanos).ok()?),
        ),
        None => None,
    };
    Some(relationship.to_string())
}
