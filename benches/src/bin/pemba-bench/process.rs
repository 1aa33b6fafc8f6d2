//! Servers the report starts as child processes (Pemba nodes, the no-op service), and what
//! they cost: CPU time and peak resident memory, read from `/proc`.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

/// A free port on 127.0.0.1 (the kernel's choice; released before the server binds it).
pub fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// A running child process, killed when dropped.
pub struct Server {
    child: Child,
    pub port: u16,
}

impl Server {
    /// Runs `program args…` and waits until it accepts connections on `port`.
    pub fn start(program: &Path, args: &[String], port: u16, log: &Path) -> anyhow::Result<Self> {
        let log_file = std::fs::File::create(log)?;
        let child = Command::new(program)
            .args(args)
            .stdout(Stdio::null())
            .stderr(log_file)
            .spawn()
            .with_context(|| format!("starting {}", program.display()))?;
        let mut server = Server { child, port };
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let deadline = Instant::now() + Duration::from_secs(60);
        while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
            if let Some(status) = server.child.try_wait()? {
                bail!(
                    "{} exited ({status}); see {}",
                    program.display(),
                    log.display()
                );
            }
            if Instant::now() > deadline {
                bail!("{} did not listen on {addr}", program.display());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(server)
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn usage(&self) -> Usage {
        Usage::of(self.child.id())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A process's CPU time so far and its peak resident memory.
#[derive(Debug, Clone, Copy, Default)]
pub struct Usage {
    pub cpu: Duration,
    pub peak_rss_bytes: u64,
}

impl Usage {
    pub fn of(pid: u32) -> Usage {
        Self::read(&format!("/proc/{pid}")).unwrap_or_default()
    }

    pub fn of_self() -> Usage {
        Self::read("/proc/self").unwrap_or_default()
    }

    fn read(proc_dir: &str) -> Option<Usage> {
        let stat = std::fs::read_to_string(format!("{proc_dir}/stat")).ok()?;
        // Fields after the command name (which may hold spaces) in parentheses.
        let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
        let ticks: u64 =
            fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
        let status = std::fs::read_to_string(format!("{proc_dir}/status")).ok()?;
        let peak_kb: u64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))?
            .trim()
            .trim_end_matches("kB")
            .trim()
            .parse()
            .ok()?;
        Some(Usage {
            // The kernel counts in clock ticks of 1/100 s on Linux.
            cpu: Duration::from_millis(ticks * 10),
            peak_rss_bytes: peak_kb * 1024,
        })
    }
}

/// `pemba` next to this executable (both are built into the same target directory).
pub fn sibling_binary(name: &str) -> anyhow::Result<PathBuf> {
    let me = std::env::current_exe()?;
    let path = me.with_file_name(name);
    if !path.exists() {
        bail!(
            "{} not found; build it first (cargo build --release -p pemba)",
            path.display()
        );
    }
    Ok(path)
}

/// The size of everything under `dir`, in bytes.
pub fn disk_usage(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|entry| match entry.metadata() {
            Ok(m) if m.is_dir() => disk_usage(&entry.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}
