//! Pagination cursors: the revision a listing was read at and the last item returned, so the
//! next page continues the same snapshot right after that item.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use pemba_proto::authzed::api::v1 as api;
use pemba_store::{key_of, RelationshipKey};
use pemba_types::{Relationship, Revision};
use tonic::Status;

fn encode(revision: Revision, last: &str) -> api::Cursor {
    api::Cursor {
        token: URL_SAFE_NO_PAD.encode(format!("{revision}\n{last}")),
    }
}

fn decode(cursor: &api::Cursor) -> Result<(Revision, String), Status> {
    let invalid = || Status::invalid_argument(format!("invalid cursor `{}`", cursor.token));
    let bytes = URL_SAFE_NO_PAD
        .decode(&cursor.token)
        .map_err(|_| invalid())?;
    let text = String::from_utf8(bytes).map_err(|_| invalid())?;
    let (revision, last) = text.split_once('\n').ok_or_else(invalid)?;
    Ok((revision.parse().map_err(|_| invalid())?, last.to_string()))
}

pub fn encode_lookup(revision: Revision, last_id: &str) -> api::Cursor {
    encode(revision, last_id)
}

pub fn decode_lookup(cursor: &api::Cursor) -> Result<(Revision, String), Status> {
    decode(cursor)
}

pub fn encode_relationship(revision: Revision, last: &Relationship) -> api::Cursor {
    let identity = Relationship::new(
        last.resource.clone(),
        last.relation.clone(),
        last.subject.clone(),
    );
    encode(revision, &identity.to_string())
}

pub fn decode_relationship(cursor: &api::Cursor) -> Result<(Revision, RelationshipKey), Status> {
    let (revision, last) = decode(cursor)?;
    let relationship = Relationship::parse(&last)
        .map_err(|_| Status::invalid_argument(format!("invalid cursor `{}`", cursor.token)))?;
    Ok((revision, key_of(&relationship)))
}
