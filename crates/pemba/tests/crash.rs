//! `kill -9` of `pemba serve` during a write load loses no acknowledged write.

mod support;

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use pemba_proto::authzed::api::v1 as api;
use pemba_proto::authzed::api::v1::permissions_service_client::PermissionsServiceClient;
use pemba_proto::authzed::api::v1::schema_service_client::SchemaServiceClient;
use support::{authorized, stored_documents, viewer, Server};
use tonic::transport::Channel;

const SCHEMA: &str = "definition user {}\n\ndefinition document {\n    relation viewer: user\n}\n";
const WRITERS: usize = 4;
const ROUNDS: usize = 3;

/// Writes one relationship per request until the server dies; records each acknowledged one.
async fn write_until_failure(
    channel: Channel,
    writer: usize,
    round: usize,
    acknowledged: Arc<Mutex<BTreeSet<String>>>,
) {
    let mut client = PermissionsServiceClient::new(channel);
    for n in 0.. {
        let document = format!("r{round}-w{writer}-n{n}");
        let update = api::RelationshipUpdate {
            operation: api::relationship_update::Operation::Create as i32,
            relationship: Some(viewer(&document, "tom")),
        };
        let request = api::WriteRelationshipsRequest {
            updates: vec![update],
            ..Default::default()
        };
        match client.write_relationships(authorized(request)).await {
            Ok(_) => {
                acknowledged
                    .lock()
                    .expect("not poisoned")
                    .insert(format!("document:{document}#viewer@user:tom"));
            }
            Err(_) => return,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_nine_during_writes_loses_no_acknowledged_write() {
    let data = tempfile::tempdir().expect("a temp dir");
    let acknowledged = Arc::new(Mutex::new(BTreeSet::new()));
    let mut server = Server::start(data.path());
    let mut schema = SchemaServiceClient::new(server.channel().await);
    schema
        .write_schema(authorized(api::WriteSchemaRequest {
            schema: SCHEMA.into(),
        }))
        .await
        .expect("schema is written");

    for round in 0..ROUNDS {
        let channel = server.channel().await;
        let writers: Vec<_> = (0..WRITERS)
            .map(|w| {
                tokio::spawn(write_until_failure(
                    channel.clone(),
                    w,
                    round,
                    acknowledged.clone(),
                ))
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(700 + 300 * round as u64)).await;
        server.kill();
        for writer in writers {
            writer.await.expect("writer task ends");
        }
        server = Server::start(data.path());
        let mut client = PermissionsServiceClient::new(server.channel().await);
        let stored = stored_documents(&mut client).await;
        let acknowledged = acknowledged.lock().expect("not poisoned").clone();
        let lost: Vec<&String> = acknowledged.difference(&stored).collect();
        assert!(
            lost.is_empty(),
            "round {round}: {} acknowledged writes lost after kill -9: {lost:?}",
            lost.len()
        );
        assert!(
            acknowledged.len() > round * 10,
            "round {round}: the load wrote too little to test anything"
        );
    }
}
