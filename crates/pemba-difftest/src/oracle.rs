//! Real SpiceDB, driven through `oracle/oracle.py` (JSON lines over a child process's pipes).

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};

use anyhow::{bail, Context};

use crate::answers::{Answer, Answers};
use crate::generate::Case;

/// A running oracle process. Each case is evaluated on a fresh SpiceDB instance.
pub struct Oracle {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

/// Where `install.sh` put the oracle (its venv and `libspicedb.so`).
pub fn oracle_dir() -> PathBuf {
    std::env::var_os("PEMBA_ORACLE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let home = std::env::var_os("HOME")
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from("/root"));
            home.join(".cache/pemba/oracle")
        })
}

impl Oracle {
    pub fn start() -> anyhow::Result<Oracle> {
        let python = oracle_dir().join("venv/bin/python");
        if !python.exists() {
            bail!(
                "the SpiceDB oracle is not installed at {}; run crates/pemba-difftest/oracle/install.sh",
                oracle_dir().display()
            );
        }
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("oracle/oracle.py");
        let mut child = Command::new(python)
            .arg(&script)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .with_context(|| format!("starting {}", script.display()))?;
        let stdin = child.stdin.take().context("oracle stdin")?;
        let stdout = BufReader::new(child.stdout.take().context("oracle stdout")?);
        Ok(Oracle {
            child,
            stdin,
            stdout,
        })
    }

    /// Asks SpiceDB every question of `case`.
    pub fn ask(&mut self, case: &Case) -> anyhow::Result<Answers> {
        let mut line = serde_json::to_string(case)?;
        line.push('\n');
        self.stdin
            .write_all(line.as_bytes())
            .context("writing to the oracle")?;
        self.stdin.flush()?;
        let mut response = String::new();
        if self.stdout.read_line(&mut response)? == 0 {
            bail!("the oracle exited");
        }
        let mut answers: Answers =
            serde_json::from_str(&response).with_context(|| format!("oracle said: {response}"))?;
        // SpiceDB's LookupSubjects may stream one subject more than once; Pemba reports each once.
        for found in answers.lookup_subjects.iter_mut() {
            if let Answer::Value(subjects) = found {
                subjects.dedup();
            }
        }
        if let Some(e) = &answers.setup_error {
            if e.code.starts_with("ORACLE_") {
                bail!("the oracle failed: {} {}", e.code, e.message);
            }
        }
        Ok(answers)
    }
}

impl Drop for Oracle {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
