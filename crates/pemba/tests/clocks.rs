//! Wrong wall clocks, with `pemba serve` processes and Debian's libfaketime (which shifts one
//! process's wall clock, not its monotonic clock): the first leader's clock 120 s behind, or
//! ahead. It steps down (or never leads) and says so in its metrics; the log's time stays with the
//! majority's clocks, so a relationship expiring at T is granted until T − 1 s and denied from
//! T + 1 s, on every node; creates retried across its leadership are applied once.

mod support;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use parking_lot::Mutex;
use pemba_proto::authzed::api::v1 as api;
use pemba_proto::authzed::api::v1::permissions_service_client::PermissionsServiceClient;
use pemba_proto::authzed::api::v1::schema_service_client::SchemaServiceClient;
use support::{authorized, free_port, metric, viewer, Server};
use tonic::transport::Channel;

const SECRET: &str = "clocks-test-secret";
const SCHEMA: &str = "use expiration\n\ndefinition user {}\n\ndefinition document {\n    relation viewer: user with expiration\n}";

/// One test at a time (each runs three nodes).
async fn serial() -> tokio::sync::MutexGuard<'static, ()> {
    static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    SERIAL.lock().await
}

/// Debian's libfaketime (`apt-get install faketime`; `.ci/test` installs it).
fn libfaketime() -> PathBuf {
    let candidates = std::fs::read_dir("/usr/lib")
        .into_iter()
        .flatten()
        .flatten()
        .map(|arch| arch.path().join("faketime/libfaketimeMT.so.1"));
    candidates
        .into_iter()
        .find(|path| path.exists())
        .expect("libfaketime is missing: apt-get install faketime (.ci/test installs it)")
}

async fn connect(server: &Server) -> Channel {
    Channel::from_shared(server.url())
        .expect("a url")
        .connect()
        .await
        .expect("connects")
}

fn fully_consistent() -> Option<api::Consistency> {
    Some(api::Consistency {
        requirement: Some(api::consistency::Requirement::FullyConsistent(true)),
    })
}

/// Three nodes on 127.0.0.1; node 1, the founder and first leader, with its wall clock shifted
/// by `shift` (`-120s`, `+120s`).
fn three_with_a_skewed_founder(root: &std::path::Path, shift: &str) -> Vec<(Server, String)> {
    let members = (1..=3)
        .map(|id| format!("{id}=127.0.0.1:{}", free_port()))
        .collect::<Vec<_>>()
        .join(",");
    let mut nodes = Vec::new();
    for id in 1..=3u64 {
        let cluster_addr = members
            .split(',')
            .find_map(|m| m.strip_prefix(&format!("{id}=")))
            .expect("listed");
        let args = [
            "--node-id",
            &id.to_string(),
            "--cluster-addr",
            cluster_addr,
            "--initial-members",
            &members,
            "--cluster-secret",
            SECRET,
        ]
        .map(String::from);
        let env = match id {
            1 => vec![
                ("LD_PRELOAD".into(), libfaketime().display().to_string()),
                ("FAKETIME".into(), shift.into()),
                ("FAKETIME_DONT_FAKE_MONOTONIC".into(), "1".into()),
            ],
            _ => vec![],
        };
        let metrics = format!("127.0.0.1:{}", free_port());
        let dir = root.join(format!("node-{id}"));
        nodes.push((
            Server::start_with_env(&dir, &metrics, free_port(), &args, &env),
            metrics,
        ));
    }
    nodes
}

/// Creates `document:<name>#viewer@user:ann` (expiring at `expires`, if given).
async fn create(
    channel: &Channel,
    name: &str,
    expires: Option<SystemTime>,
) -> Result<(), tonic::Status> {
    let mut relationship = viewer(name, "ann");
    relationship.optional_expires_at = expires.map(|at| {
        let since = at.duration_since(UNIX_EPOCH).expect("after the epoch");
        pemba_proto::prost_types::Timestamp {
            seconds: since.as_secs() as i64,
            nanos: since.subsec_nanos() as i32,
        }
    });
    let mut request = authorized(api::WriteRelationshipsRequest {
        updates: vec![api::RelationshipUpdate {
            operation: api::relationship_update::Operation::Create as i32,
            relationship: Some(relationship),
        }],
        ..Default::default()
    });
    request.set_timeout(Duration::from_secs(5));
    PermissionsServiceClient::new(channel.clone())
        .write_relationships(request)
        .await
        .map(|_| ())
}

async fn granted(channel: &Channel, name: &str) -> Result<bool, tonic::Status> {
    let view = viewer(name, "ann");
    let mut request = authorized(api::CheckPermissionRequest {
        consistency: fully_consistent(),
        resource: view.resource,
        permission: "viewer".into(),
        subject: view.subject,
        ..Default::default()
    });
    request.set_timeout(Duration::from_secs(5));
    let answer = PermissionsServiceClient::new(channel.clone())
        .check_permission(request)
        .await?
        .into_inner();
    Ok(answer.permissionship
        == api::check_permission_response::Permissionship::HasPermission as i32)
}

/// A create's name and how it was answered.
type Outcome = (String, Result<(), tonic::Code>);

async fn skewed_first_leader(shift: &str, expected_offset: f64) {
    let root = tempfile::tempdir().expect("a temp dir");
    let nodes = three_with_a_skewed_founder(root.path(), shift);
    let mut channels = Vec::new();
    for (server, _) in &nodes {
        channels.push(connect(server).await);
    }

    // Creates through every node, from the start, across the skewed node's brief leadership:
    // a create applied twice would be answered ALREADY_EXISTS.
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let outcomes: Arc<Mutex<Vec<Outcome>>> = Arc::default();
    let writer = {
        let (channels, stop, outcomes) = (channels.clone(), stop.clone(), outcomes.clone());
        tokio::spawn(async move {
            let mut i = 0;
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                let name = format!("w{i}");
                let later = SystemTime::now() + Duration::from_secs(3600);
                let outcome = create(&channels[i % 3], &name, Some(later)).await;
                outcomes.lock().push((name, outcome.map_err(|s| s.code())));
                i += 1;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
    };
    let schema = channels[1].clone();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let mut request = authorized(api::WriteSchemaRequest {
            schema: SCHEMA.into(),
        });
        request.set_timeout(Duration::from_secs(5));
        if SchemaServiceClient::new(schema.clone())
            .write_schema(request)
            .await
            .is_ok()
        {
            break;
        }
        assert!(Instant::now() < deadline, "no schema written");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // The skewed node says so and does not lead; another does.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let skewed = metric(&nodes[0].1, "pemba_clock_skewed") == Some(1.0);
        let leads = metric(&nodes[0].1, "pemba_raft_is_leader") == Some(1.0);
        let other = [1, 2]
            .iter()
            .any(|i| metric(&nodes[*i].1, "pemba_raft_is_leader") == Some(1.0));
        if skewed && !leads && other {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "node 1 (clock {shift}) skewed {skewed}, leads {leads}, another leads {other}:\n{}",
            nodes[0].0.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let offset = metric(&nodes[0].1, "pemba_clock_offset_seconds").expect("an offset");
    assert!(
        (offset - expected_offset).abs() < 2.0,
        "node 1 measured its offset as {offset}"
    );
    assert!(nodes[0].0.log().contains("--max-clock-offset"));

    // A grant expiring 4 s from now (real time): granted until T − 1 s, denied from T + 1 s, on
    // the skewed node and the others alike.
    let expires = SystemTime::now() + Duration::from_secs(4);
    create(&channels[1], "plan", Some(expires))
        .await
        .expect("the expiring grant is written");
    let mut answers = Vec::new();
    while SystemTime::now() < expires + Duration::from_secs(3) {
        for channel in &channels {
            let asked = SystemTime::now();
            let answer = granted(channel, "plan").await.expect("answered");
            answers.push((asked, SystemTime::now(), answer));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for (asked, answered, grant) in &answers {
        let early = *answered < expires - Duration::from_secs(1);
        let late = *asked > expires + Duration::from_secs(1);
        assert!(
            (!early || *grant) && (!late || !*grant),
            "a check from {:?} to {:?} (expiry at {:?}) answered {grant}",
            asked.duration_since(UNIX_EPOCH),
            answered.duration_since(UNIX_EPOCH),
            expires.duration_since(UNIX_EPOCH)
        );
    }

    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    writer.await.expect("the writer ends");
    let outcomes = outcomes.lock().clone();
    let twice: Vec<_> = outcomes
        .iter()
        .filter(|(_, o)| *o == Err(tonic::Code::AlreadyExists))
        .collect();
    assert!(twice.is_empty(), "creates applied twice: {twice:?}");
    let acknowledged: Vec<&String> = outcomes
        .iter()
        .filter(|(_, o)| o.is_ok())
        .map(|(n, _)| n)
        .collect();
    assert!(acknowledged.len() > 20, "{outcomes:?}");
    for name in acknowledged {
        assert!(
            granted(&channels[0], name).await.expect("answered"),
            "{name} was acknowledged but is not stored"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_first_leader_120_s_behind_steps_down_and_expirations_keep_real_time() {
    let _serial = serial().await;
    skewed_first_leader("-120s", -120.0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_first_leader_120_s_ahead_steps_down_and_expirations_keep_real_time() {
    let _serial = serial().await;
    skewed_first_leader("+120s", 120.0).await;
}
