//! End-to-end tests of the client subcommands (`schema`, `relationship`, `permission`, `import`,
//! `export`, `watch`) against a real `pemba serve`.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use tempfile::TempDir;

mod support;

use support::KEY;

const SCHEMA: &str = "
definition user {}

definition group {
    relation member: user | group#member
}

definition document {
    relation viewer: user | user:* | group#member
    relation editor: user
    relation banned: user
    permission view = (viewer + editor) - banned
}
";

/// A `pemba serve` on a free port and a temporary data directory, killed when dropped.
struct Server {
    /// Held for its lifetime: dropping it stops the server.
    _node: support::Server,
    endpoint: String,
    data: TempDir,
}

impl Server {
    fn start() -> Server {
        let data = TempDir::new().expect("a temporary directory");
        let node = support::Server::start(&data.path().join("node"));
        let endpoint = node.addr.to_string();
        Server {
            _node: node,
            endpoint,
            data,
        }
    }

    /// `pemba ARGS…` against this server with the right key.
    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_pemba"));
        command
            .args(args)
            .env("PEMBA_ENDPOINT", &self.endpoint)
            .env("PEMBA_TOKEN", KEY)
            .env_remove("PEMBA_TLS_CA_PATH")
            .stdin(Stdio::null());
        command
    }

    fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("pemba runs")
    }

    /// Runs `pemba ARGS…`, asserts it succeeded, and returns its stdout.
    fn ok(&self, args: &[&str]) -> String {
        let output = self.run(args);
        assert!(
            output.status.success(),
            "pemba {args:?} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).expect("UTF-8 output")
    }

    /// Runs `pemba ARGS…`, asserts it failed, and returns its stderr.
    fn fails(&self, args: &[&str]) -> String {
        let output = self.run(args);
        assert!(!output.status.success(), "pemba {args:?} succeeded");
        String::from_utf8(output.stderr).expect("UTF-8 output")
    }

    /// Writes `text` to a file in the data directory and returns its path.
    fn file(&self, name: &str, text: &str) -> String {
        let path = self.data.path().join(name);
        std::fs::write(&path, text).expect("writing a test file");
        path.to_str().expect("a UTF-8 path").to_string()
    }

    fn write_schema(&self) {
        let path = self.file("schema.zed", SCHEMA);
        let output = self.run(&["schema", "write", &path]);
        assert!(output.status.success(), "{output:?}");
        assert!(!output.stderr.is_empty(), "schema write prints its token");
    }
}

fn lines(text: &str) -> BTreeSet<String> {
    text.lines().map(str::to_string).collect()
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| s.to_string()).collect()
}

#[test]
fn schema_relationships_and_permissions() {
    let server = Server::start();
    server.write_schema();
    assert!(server
        .ok(&["schema", "read"])
        .contains("permission view = "));

    let token = server.ok(&[
        "relationship",
        "create",
        "document:plan",
        "viewer",
        "user:tom",
    ]);
    assert!(!token.trim().is_empty(), "create prints its token");
    let again = server.fails(&[
        "relationship",
        "create",
        "document:plan",
        "viewer",
        "user:tom",
    ]);
    assert!(again.starts_with("error: AlreadyExists: "), "{again}");
    server.ok(&["relationship", "touch", "document:plan#editor@user:ann"]);
    server.ok(&["relationship", "create", "group:eng", "member", "user:bob"]);
    server.ok(&[
        "relationship",
        "touch",
        "document:plan",
        "viewer",
        "group:eng#member",
    ]);

    assert_eq!(
        lines(&server.ok(&["relationship", "read", "document"])),
        set(&[
            "document:plan#editor@user:ann",
            "document:plan#viewer@group:eng#member",
            "document:plan#viewer@user:tom",
        ])
    );
    assert_eq!(
        server.ok(&[
            "relationship",
            "read",
            "document:plan",
            "viewer",
            "user:tom"
        ]),
        "document:plan#viewer@user:tom\n"
    );
    assert_eq!(
        server.ok(&[
            "relationship",
            "read",
            "document",
            "viewer",
            "group:eng#member"
        ]),
        "document:plan#viewer@group:eng#member\n"
    );

    let check =
        |subject: &str| server.ok(&["permission", "check", "document:plan", "view", subject]);
    assert_eq!(check("user:tom"), "true\n");
    assert_eq!(check("user:bob"), "true\n");
    assert_eq!(check("user:eve"), "false\n");
    server.fails(&[
        "permission",
        "check",
        "document:plan",
        "view",
        "user:eve",
        "--error-on-no-permission",
    ]);
    let shown = server.run(&[
        "permission",
        "check",
        "document:plan",
        "view",
        "user:tom",
        "--show-token",
        "--consistency-full",
    ]);
    assert!(!shown.stderr.is_empty(), "--show-token prints the token");
    let json: serde_json::Value = serde_json::from_str(&server.ok(&[
        "permission",
        "check",
        "document:plan",
        "view",
        "user:ann",
        "--json",
    ]))
    .expect("check --json prints JSON");
    assert_eq!(json["permissionship"], "PERMISSIONSHIP_HAS_PERMISSION");

    assert_eq!(
        server.ok(&[
            "permission",
            "lookup-resources",
            "document",
            "view",
            "user:bob"
        ]),
        "plan\n"
    );
    assert_eq!(
        lines(&server.ok(&[
            "permission",
            "lookup-subjects",
            "document:plan",
            "view",
            "user"
        ])),
        set(&["user:ann", "user:bob", "user:tom"])
    );
    let tree = server.ok(&["permission", "expand", "document:plan", "view"]);
    for expected in [
        "document:plan#view",
        "exclusion",
        "document:plan#viewer",
        "user:tom",
        "group:eng#member",
    ] {
        assert!(
            tree.contains(expected),
            "expand output lacks {expected}:\n{tree}"
        );
    }

    server.ok(&[
        "relationship",
        "delete",
        "document:plan",
        "viewer",
        "user:tom",
    ]);
    assert_eq!(check("user:tom"), "false\n");

    server.ok(&[
        "relationship",
        "create",
        "document:public",
        "viewer",
        "user:*",
    ]);
    server.ok(&[
        "relationship",
        "create",
        "document:public",
        "banned",
        "user:eve",
    ]);
    assert_eq!(
        server.ok(&[
            "permission",
            "lookup-subjects",
            "document:public",
            "view",
            "user"
        ]),
        "user:* - {user:eve}\n"
    );

    let refused = server.fails(&["relationship", "bulk-delete", "document:plan"]);
    assert!(refused.contains("--force"), "{refused}");
    server.ok(&["relationship", "bulk-delete", "document:plan", "--force"]);
    assert_eq!(server.ok(&["relationship", "read", "document:plan"]), "");
}

#[test]
fn import_then_export_gives_back_the_relationships() {
    let server = Server::start();
    let validation = format!(
        "schema: |-\n{}\nrelationships: |-\n  group:eng#member@user:bob\n  // a comment\n  document:plan#viewer@group:eng#member\n",
        SCHEMA.lines().map(|l| format!("  {l}")).collect::<Vec<_>>().join("\n")
    );
    let yaml = server.file("validation.yaml", &validation);
    server.ok(&["import", &yaml]);
    assert!(server
        .ok(&["schema", "read"])
        .contains("definition document"));

    let text = "document:plan#editor@user:ann\n\n// comment\ndocument:spec#viewer@user:*\ndocument:spec#banned@user:eve\ngroup:eng#member@group:ops#member\ndocument:x#viewer@user:tom\n";
    let path = server.file("relationships.txt", text);
    let imported = server.run(&["import", &path, "--batch-size", "2"]);
    assert!(imported.status.success(), "{imported:?}");
    assert!(String::from_utf8_lossy(&imported.stderr).contains("imported 5 relationships"));

    let mut expected = lines(text);
    expected.retain(|l| !l.is_empty() && !l.starts_with("//"));
    expected.extend(set(&[
        "group:eng#member@user:bob",
        "document:plan#viewer@group:eng#member",
    ]));
    assert_eq!(lines(&server.ok(&["export"])), expected);

    let out = server.data.path().join("export.txt");
    server.ok(&["export", "--output", out.to_str().expect("a UTF-8 path")]);
    assert_eq!(
        lines(&std::fs::read_to_string(&out).expect("the export file")),
        expected
    );

    let bad = server.file(
        "bad.txt",
        "document:plan#viewer@user:tom\nnot a relationship\n",
    );
    let error = server.fails(&["import", &bad]);
    assert!(error.contains("bad.txt:2"), "{error}");
}

/// An import larger than one log entry holds is committed in parts; a bad line in a file stops
/// it before anything is sent, and a bad line on stdin cancels the call, so the server commits
/// none of the part it was still collecting.
#[test]
fn large_imports_commit_in_parts_and_stop_at_a_bad_line() {
    use std::io::Write;
    use std::process::Stdio;

    let server = Server::start();
    server.write_schema();
    let viewers = |range: std::ops::Range<usize>| -> String {
        range
            .map(|i| format!("document:d{i}#viewer@user:u{i}\n"))
            .collect()
    };
    let exported = || server.ok(&["export"]).lines().count();

    let mut bad_file = viewers(0..7_000);
    bad_file.push_str("not a relationship\n");
    let bad = server.file("bad-large.txt", &bad_file);
    let error = server.fails(&["import", &bad]);
    assert!(error.contains("bad-large.txt:7001"), "{error}");
    assert_eq!(exported(), 0, "a file with a bad line imports nothing");

    let good = server.file("large.txt", &viewers(0..12_001));
    let imported = server.run(&["import", &good]);
    assert!(imported.status.success(), "{imported:?}");
    assert!(String::from_utf8_lossy(&imported.stderr).contains("imported 12001 relationships"));
    assert_eq!(exported(), 12_001);

    let mut child = server
        .command(&["import", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("pemba runs");
    let mut stdin = child.stdin.take().expect("stdin");
    let mut piped = viewers(20_000..26_000);
    piped.push_str("not a relationship\n");
    stdin.write_all(piped.as_bytes()).expect("writing stdin");
    drop(stdin);
    let output = child.wait_with_output().expect("pemba ends");
    assert!(!output.status.success());
    let error = String::from_utf8_lossy(&output.stderr);
    assert!(error.contains("-:6001"), "{error}");
    let committed = exported() - 12_001;
    assert!(
        committed == 0 || committed == 5_000,
        "only whole parts are committed, not the {committed} relationships before the bad line"
    );
}

#[test]
fn a_wrong_token_is_denied_and_a_missing_one_unauthenticated() {
    let server = Server::start();
    let wrong = server
        .command(&["schema", "read", "--token", "wrong"])
        .output()
        .expect("pemba runs");
    assert!(!wrong.status.success());
    let stderr = String::from_utf8_lossy(&wrong.stderr);
    assert!(stderr.starts_with("error: PermissionDenied: "), "{stderr}");

    let missing = server
        .command(&["permission", "check", "document:plan", "view", "user:tom"])
        .env_remove("PEMBA_TOKEN")
        .output()
        .expect("pemba runs");
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("Unauthenticated"));
}

#[test]
fn watch_prints_changes_after_a_revision() {
    let server = Server::start();
    server.write_schema();
    let token = server.ok(&[
        "relationship",
        "create",
        "document:plan",
        "viewer",
        "user:tom",
    ]);
    let mut watch = server
        .command(&["watch", "--revision", token.trim()])
        .stdout(Stdio::piped())
        .spawn()
        .expect("pemba watch starts");
    let stdout = watch.stdout.take().expect("piped stdout");
    let (sender, receiver) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = sender.send(line);
        }
    });
    server.ok(&[
        "relationship",
        "touch",
        "document:plan",
        "editor",
        "user:ann",
    ]);
    server.ok(&[
        "relationship",
        "delete",
        "document:plan",
        "viewer",
        "user:tom",
    ]);
    let next = || {
        receiver
            .recv_timeout(Duration::from_secs(30))
            .expect("a watch line")
    };
    assert!(next().starts_with("TOUCH document:plan#editor@user:ann (revision "));
    assert!(next().starts_with("DELETE document:plan#viewer@user:tom (revision "));
    let _ = watch.kill();
    let _ = watch.wait();
}

#[test]
fn schema_write_reads_stdin() {
    let server = Server::start();
    let mut child = server
        .command(&["schema", "write", "-", "--json"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("pemba runs");
    child
        .stdin
        .take()
        .expect("piped stdin")
        .write_all(SCHEMA.as_bytes())
        .expect("writing the schema");
    let output = child.wait_with_output().expect("pemba finishes");
    assert!(output.status.success(), "{output:?}");
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).expect("JSON");
    assert!(json["writtenAt"]["token"].is_string(), "{json}");
}
