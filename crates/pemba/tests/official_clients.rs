//! SpiceDB's official Node and Go clients against `pemba serve` and against the SpiceDB server:
//! `tests/node/suite.mjs` (`@authzed/authzed-node`) and `tests/go` (`authzed-go`) each run
//! schema, writes with tokens, checks, a bulk check, both lookups, read, expand, delete, an
//! unknown permission and a wrong key, printing one line per outcome; both servers must print
//! the same lines.
//!
//! Run `bash .ci/install-clients.sh` first (CI does): it builds the SpiceDB server and the Go
//! suite into `~/.cache/pemba/go-bin` and installs the Node client into
//! `~/.cache/pemba/node-client` (`PEMBA_CLIENTS_DIR` moves them).

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

mod support;

use support::{free_port, Server, KEY};

fn clients_dir() -> PathBuf {
    match std::env::var_os("PEMBA_CLIENTS_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => Path::new(&std::env::var_os("HOME").expect("HOME is set")).join(".cache/pemba"),
    }
}

/// `path`, or a failure saying how to install it.
fn installed(path: PathBuf) -> PathBuf {
    assert!(
        path.exists(),
        "{} is missing: run `bash .ci/install-clients.sh` first",
        path.display()
    );
    path
}

/// A SpiceDB server (in-memory datastore), stopped when dropped.
struct SpiceDb(Child);

impl SpiceDb {
    fn start(port: u16) -> SpiceDb {
        let child = Command::new(installed(clients_dir().join("go-bin/spicedb")))
            .args([
                "serve",
                "--grpc-preshared-key",
                KEY,
                "--datastore-engine",
                "memory",
            ])
            .args(["--grpc-addr", &format!("127.0.0.1:{port}")])
            .args(["--http-enabled=false", "--metrics-enabled=false"])
            .args(["--dispatch-cluster-enabled=false"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spicedb serve starts");
        let deadline = Instant::now() + Duration::from_secs(60);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "spicedb did not listen within 60 s"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        SpiceDb(child)
    }
}

impl Drop for SpiceDb {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Runs the Node suite against `endpoint` (the script is copied next to the installed client,
/// whose modules it imports).
fn run_node_suite(endpoint: &str) -> Output {
    let node_dir = clients_dir().join("node-client");
    installed(node_dir.join("node_modules/@authzed/authzed-node"));
    let script = node_dir.join("suite.mjs");
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/node/suite.mjs");
    std::fs::copy(&source, &script).expect("the suite is copied");
    Command::new("node")
        .arg(&script)
        .args([endpoint, KEY])
        .arg(schema_file())
        .current_dir(&node_dir)
        .stdin(Stdio::null())
        .output()
        .expect("node runs")
}

/// Runs the Go suite (built by the install script) against `endpoint`.
fn run_go_suite(endpoint: &str) -> Output {
    Command::new(installed(
        clients_dir().join("go-bin/pemba-go-client-suite"),
    ))
    .args([endpoint, KEY])
    .arg(schema_file())
    .stdin(Stdio::null())
    .output()
    .expect("the Go suite runs")
}

/// The schema both suites write (and the Node suite reads back).
fn schema_file() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/official_clients.zed")
}

fn text(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Runs `suite` against the SpiceDB server, then against Pemba; returns Pemba's output once it
/// is shown equal to SpiceDB's.
fn same_as_spicedb(suite: fn(&str) -> Output) -> String {
    let port = free_port();
    let spicedb = SpiceDb::start(port);
    let expected = suite(&format!("127.0.0.1:{port}"));
    drop(spicedb);
    assert!(expected.status.success(), "against SpiceDB: {expected:?}");

    let data = tempfile::tempdir().expect("a temp dir");
    let server = Server::start(data.path());
    let actual = suite(server.url().trim_start_matches("http://"));
    assert!(actual.status.success(), "against Pemba: {actual:?}");
    assert_eq!(
        text(&actual),
        text(&expected),
        "Pemba (left) and SpiceDB (right) differ"
    );
    text(&actual)
}

#[test]
fn the_node_client_gets_the_same_answers_from_pemba_as_from_spicedb() {
    let output = same_as_spicedb(run_node_suite);
    assert_eq!(output.lines().count(), 21, "{output}");
}

#[test]
fn the_go_client_gets_the_same_answers_from_pemba_as_from_spicedb() {
    let output = same_as_spicedb(run_go_suite);
    assert_eq!(output.lines().count(), 18, "{output}");
}
