//! Starting and stopping `pemba serve` for integration tests.

#![allow(dead_code)] // Each test binary uses a different part of this module.

pub mod certs;
pub mod cluster_node;
pub mod netns;
pub mod relay;

use std::collections::BTreeSet;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
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

/// A port that was free a moment ago on 127.0.0.1 and that this test process has not handed out
/// before: the kernel may give a just-released port again, and two servers of one test must not
/// race for it.
pub fn free_port() -> u16 {
    static HANDED_OUT: Mutex<BTreeSet<u16>> = Mutex::new(BTreeSet::new());
    loop {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a free port");
        if HANDED_OUT.lock().expect("not poisoned").insert(port) {
            return port;
        }
    }
}

impl Server {
    /// Starts a server on `data_dir` and a free port, and waits until it accepts connections.
    pub fn start(data_dir: &Path) -> Server {
        Self::start_with_metrics(data_dir, "off")
    }

    /// Like [`Server::start`], serving `/metrics`, `/healthz` and `/readyz` on `metrics_addr`.
    pub fn start_with_metrics(data_dir: &Path, metrics_addr: &str) -> Server {
        Self::start_with_args(data_dir, metrics_addr, free_port(), &[])
    }

    /// Starts a server with gRPC on `port` and `extra` arguments (cluster flags, say).
    pub fn start_with_args(
        data_dir: &Path,
        metrics_addr: &str,
        port: u16,
        extra: &[String],
    ) -> Server {
        Self::start_with_env(data_dir, metrics_addr, port, extra, &[])
    }

    /// Like [`Server::start_with_args`], with `env` added to the process environment (the log
    /// filter is `PEMBA_LOG=info` unless `env` sets it; set to `""` it means the default).
    pub fn start_with_env(
        data_dir: &Path,
        metrics_addr: &str,
        port: u16,
        extra: &[String],
        env: &[(String, String)],
    ) -> Server {
        let addr: SocketAddr = format!("127.0.0.1:{port}")
            .parse()
            .expect("a socket address");
        std::fs::create_dir_all(data_dir).expect("the data directory");
        let log = data_dir.join("serve.log");
        let log_file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .expect("the server log file");
        let mut command = Command::new(env!("CARGO_BIN_EXE_pemba"));
        command.env("PEMBA_LOG", "info");
        for (key, value) in env {
            match value.is_empty() {
                true => command.env_remove(key),
                false => command.env(key, value),
            };
        }
        let child = command
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
            .args(extra)
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

    /// A connected channel to the server's gRPC port.
    pub async fn channel(&self) -> tonic::transport::Channel {
        tonic::transport::Channel::from_shared(self.url())
            .expect("a valid url")
            .connect()
            .await
            .expect("connects")
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

    /// Sends `signal` (`STOP`, `CONT`, …) to the process.
    pub fn signal(&self, signal: &str) {
        let pid = self.child.id().to_string();
        let sent = Command::new("kill")
            .args([&format!("-{signal}"), &pid])
            .status()
            .expect("kill runs");
        assert!(sent.success(), "kill -{signal} {pid} failed");
    }

    /// Waits up to `within` for the process to exit by itself; its exit status, if it did.
    pub fn wait_exit(&mut self, within: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + within;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            if Instant::now() > deadline {
                return None;
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

/// The whole HTTP/1.1 response to `GET path` from `addr`.
pub fn http_get(addr: &str, path: &str) -> String {
    use std::io::{Read, Write};
    let mut stream = TcpStream::connect(addr).expect("the metrics endpoint accepts connections");
    write!(stream, "GET {path} HTTP/1.1\r\nHost: test\r\n\r\n").expect("request sent");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("response read");
    response
}

/// Waits up to 30 s until `/readyz` on `metrics_addr` says ready (a leader is known).
pub fn wait_ready(metrics_addr: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !http_get(metrics_addr, "/readyz").starts_with("HTTP/1.1 200") {
        assert!(Instant::now() < deadline, "not ready within 30 s");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The value of an unlabelled metric in `/metrics` of `metrics_addr`.
pub fn metric(metrics_addr: &str, name: &str) -> Option<f64> {
    let prefix = format!("{name} ");
    http_get(metrics_addr, "/metrics")
        .lines()
        .find_map(|line| line.strip_prefix(&prefix)?.trim().parse().ok())
}

/// `document:<document>#viewer@user:<user>` on the wire.
pub fn viewer(document: &str, user: &str) -> pemba_proto::authzed::api::v1::Relationship {
    use pemba_proto::authzed::api::v1 as api;
    api::Relationship {
        resource: Some(api::ObjectReference {
            object_type: "document".into(),
            object_id: document.into(),
        }),
        relation: "viewer".into(),
        subject: Some(api::SubjectReference {
            object: Some(api::ObjectReference {
                object_type: "user".into(),
                object_id: user.into(),
            }),
            optional_relation: String::new(),
        }),
        optional_caveat: None,
        optional_expires_at: None,
    }
}

/// `message` with the test key as its bearer token.
pub fn authorized<T>(message: T) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    let value = format!("Bearer {KEY}").parse().expect("a header value");
    request.metadata_mut().insert("authorization", value);
    request
}

/// Whether `user` may view `document` on the node behind `client`, asked with `consistency`
/// and a deadline.
pub async fn check_viewer(
    client: &mut pemba_proto::authzed::api::v1::permissions_service_client::PermissionsServiceClient<
        tonic::transport::Channel,
    >,
    document: &str,
    user: &str,
    consistency: Option<pemba_proto::authzed::api::v1::Consistency>,
    deadline: Duration,
) -> Result<bool, tonic::Status> {
    use pemba_proto::authzed::api::v1 as api;
    let view = viewer(document, user);
    let mut request = authorized(api::CheckPermissionRequest {
        consistency,
        resource: view.resource,
        permission: "viewer".into(),
        subject: view.subject,
        ..Default::default()
    });
    request.set_timeout(deadline);
    let answer = client.check_permission(request).await?.into_inner();
    Ok(answer.permissionship
        == api::check_permission_response::Permissionship::HasPermission as i32)
}

/// Runs `pemba serve args…`, which must refuse to start; its standard error.
pub fn serve_refused(data_dir: &Path, args: &[&str]) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_pemba"))
        .args([
            "serve",
            "--grpc-preshared-key",
            "k",
            "--metrics-addr",
            "off",
        ])
        .args(["--grpc-addr", &format!("127.0.0.1:{}", free_port())])
        .args(args)
        .arg("--data-dir")
        .arg(data_dir)
        .output()
        .expect("pemba runs");
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(!output.status.success(), "{stderr}");
    stderr
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
