//! Starting and stopping `pemba serve` for integration tests.

#![allow(dead_code)] // Each test binary uses a different part of this module.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The key every test server accepts.
pub const KEY: &str = "test-preshared-key";

/// A `pemba serve` child process, killed when dropped. Its log goes to `serve.log` in its data
/// directory and is shown when it fails to start.
pub struct Server {
    child: Child,
    pub addr: SocketAddr,
    log: PathBuf,
}

/// A port that was free a moment ago on 127.0.0.1.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

impl Server {
    /// Starts a server on `data_dir` and a free port, and waits until it accepts connections.
    pub fn start(data_dir: &Path) -> Server {
        Self::start_with_metrics(data_dir, "off")
    }

    /// Like [`Server::start`], serving `/metrics`, `/healthz` and `/readyz` on `metrics_addr`.
    pub fn start_with_metrics(data_dir: &Path, metrics_addr: &str) -> Server {
        let addr: SocketAddr = format!("127.0.0.1:{}", free_port())
            .parse()
            .expect("a socket address");
        std::fs::create_dir_all(data_dir).expect("the data directory");
        let log = data_dir.join("serve.log");
        let log_file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .expect("the server log file");
        let child = Command::new(env!("CARGO_BIN_EXE_pemba"))
            .args([
                "serve",
                "--grpc-preshared-key",
                KEY,
                "--grpc-addr",
                &addr.to_string(),
                "--metrics-addr",
                metrics_addr,
                "--data-dir",
            ])
            .arg(data_dir)
            .env("PEMBA_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log_file)
            .spawn()
            .expect("pemba serve starts");
        let mut server = Server { child, addr, log };
        server.wait_until_listening();
        server
    }

    fn wait_until_listening(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while TcpStream::connect(self.addr).is_err() {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("pemba serve exited early with {status}:\n{}", self.log());
            }
            assert!(
                Instant::now() < deadline,
                "pemba serve did not listen on {} within 60 s:\n{}",
                self.addr,
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// What the server has logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The endpoint URL for tonic clients.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Sends SIGTERM and waits up to `within` for the process to exit; returns whether it exited
    /// successfully.
    pub fn terminate(mut self, within: Duration) -> bool {
        let pid = self.child.id().to_string();
        let sent = Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("kill runs");
        assert!(sent.success(), "kill -TERM {pid} failed");
        let deadline = Instant::now() + within;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.success();
            }
            if Instant::now() > deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Kills the process with SIGKILL, as a crash would, and waits for it to be gone.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `message` with the test key as its bearer token.
pub fn authorized<T>(message: T) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    let value = format!("Bearer {KEY}").parse().expect("a header value");
    request.metadata_mut().insert("authorization", value);
    request
}

/// Every stored relationship on a `document`, read fully consistent, as
/// `document:id#relation@type:id[#relation]`.
pub async fn stored_documents(
    client: &mut pemba_proto::authzed::api::v1::permissions_service_client::PermissionsServiceClient<
        tonic::transport::Channel,
    >,
) -> std::collections::BTreeSet<String> {
    use pemba_proto::authzed::api::v1 as api;
    let request = api::ReadRelationshipsRequest {
        consistency: Some(api::Consistency {
            requirement: Some(api::consistency::Requirement::FullyConsistent(true)),
        }),
        relationship_filter: Some(api::RelationshipFilter {
            resource_type: "document".into(),
            ..Default::default()
        }),
        ..Default::default()
    };
    let mut stream = client
        .read_relationships(authorized(request))
        .await
        .expect("read starts")
        .into_inner();
    let mut found = std::collections::BTreeSet::new();
    while let Some(response) = stream.message().await.expect("read continues") {
        let r = response.relationship.expect("a relationship");
        let resource = r.resource.expect("a resource");
        let subject = r.subject.expect("a subject");
        let object = subject.object.expect("a subject object");
        let subject_relation = match subject.optional_relation.as_str() {
            "" => String::new(),
            relation => format!("#{relation}"),
        };
        found.insert(format!(
            "document:{}#{}@{}:{}{subject_relation}",
            resource.object_id, r.relation, object.object_type, object.object_id
        ));
    }
    found
}
