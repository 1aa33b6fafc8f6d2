//! Drives a running `pemba serve` with SpiceDB's official Python client (PyPI `authzed`), through
//! `tests/python/test_api.py`, and checks that the same test passes against real SpiceDB.
//!
//! The Python environment is the differential test's oracle venv: run
//! `crates/pemba-difftest/oracle/install.sh` first (CI does). It lives in `$PEMBA_ORACLE_DIR`,
//! by default `~/.cache/pemba/oracle`.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

mod support;

use support::{Server, KEY};
/// How long the whole Python test may take.
const PYTHON_TIMEOUT: Duration = Duration::from_secs(300);

fn oracle_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("PEMBA_ORACLE_DIR") {
        return PathBuf::from(dir);
    }
    let home = std::env::var_os("HOME").expect("HOME is set");
    Path::new(&home).join(".cache/pemba/oracle")
}

/// The oracle venv's python; fails the test with what to do if it is not installed.
fn venv_python() -> PathBuf {
    let python = oracle_dir().join("venv/bin/python");
    assert!(
        python.is_file(),
        "{} is missing: run `bash crates/pemba-difftest/oracle/install.sh` first \
         (it installs the Python `authzed` client and embedded SpiceDB)",
        python.display()
    );
    python
}

fn test_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/test_api.py")
}

/// The outcome of one run of the Python test.
struct PythonRun {
    success: bool,
    output: String,
}

/// Runs the Python test with `envs`, its output captured in `dir`, killed after
/// [`PYTHON_TIMEOUT`].
fn run_python(dir: &Path, envs: &[(&str, String)]) -> PythonRun {
    let output_path = dir.join("python.out");
    let output = File::create(&output_path).expect("python output file");
    let mut command = Command::new(venv_python());
    command
        .arg(test_script())
        .current_dir(test_script().parent().expect("the test's directory"))
        .env("PYTHONUNBUFFERED", "1")
        .stdin(Stdio::null())
        .stdout(output.try_clone().expect("python output file"))
        .stderr(output);
    for (name, value) in envs {
        command.env(name, value);
    }
    let mut child = command.spawn().expect("the venv's python starts");
    let deadline = Instant::now() + PYTHON_TIMEOUT;
    let status = loop {
        match child.try_wait().expect("waiting for python") {
            Some(status) => break Some(status),
            None if Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            None => std::thread::sleep(Duration::from_millis(100)),
        }
    };
    let mut output = std::fs::read_to_string(&output_path).unwrap_or_default();
    if status.is_none() {
        output.push_str(&format!("\n(killed after {PYTHON_TIMEOUT:?})"));
    }
    PythonRun {
        success: status.is_some_and(|s| s.success()),
        output,
    }
}

#[test]
fn official_python_client_against_pemba_serve() {
    let python = venv_python();
    let dir = tempfile::tempdir().expect("a temporary directory");
    let server = Server::start(&dir.path().join("server"));
    // A second datastore, whose ZedTokens the first must recognise as foreign.
    let other = Server::start(&dir.path().join("other"));
    let run = run_python(
        dir.path(),
        &[
            ("PEMBA_TEST_TARGET", "pemba".to_string()),
            ("PEMBA_TEST_ADDR", server.addr.to_string()),
            ("PEMBA_TEST_OTHER_ADDR", other.addr.to_string()),
            ("PEMBA_TEST_KEY", KEY.to_string()),
        ],
    );
    assert!(
        run.success,
        "{} {} failed:\n{}\n--- pemba serve log ---\n{}",
        python.display(),
        test_script().display(),
        run.output,
        server.log()
    );
}

/// The expectations in test_api.py are real SpiceDB's answers: the same test, against embedded
/// SpiceDB v1.54 from the oracle install (tests of what it cannot do are skipped).
#[test]
fn python_test_expectations_hold_for_real_spicedb() {
    let python = venv_python();
    let dir = tempfile::tempdir().expect("a temporary directory");
    let run = run_python(
        dir.path(),
        &[("PEMBA_TEST_TARGET", "spicedb-embedded".to_string())],
    );
    assert!(
        run.success,
        "{} {} failed against embedded SpiceDB:\n{}",
        python.display(),
        test_script().display(),
        run.output
    );
}
