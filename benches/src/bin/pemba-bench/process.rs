//! Servers the report starts as child processes (Pemba nodes, SpiceDB, OpenFGA, the no-op
//! service), pinned to the server cores, and what they cost: CPU time and peak resident memory,
//! read from `/proc`.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

/// A free port on 127.0.0.1 (the kernel's choice; released before the server binds it).
pub fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// The cores every server runs on, the same for every system; the load generator runs on
/// others (`report.sh` pins it with `taskset`).
#[derive(Debug, Clone, Default)]
pub struct Pinning {
    /// A `taskset -c` CPU list (`1`, `2-3`); `None`: not pinned.
    pub cpus: Option<String>,
}

impl Pinning {
    /// The CPU numbers of the list (`2-3,5` is 2, 3 and 5).
    pub fn cpu_numbers(&self) -> Vec<usize> {
        let Some(list) = &self.cpus else {
            return Vec::new();
        };
        let mut numbers = Vec::new();
        for part in list.split(',') {
            let (low, high) = part.split_once('-').unwrap_or((part, part));
            if let (Ok(low), Ok(high)) = (low.trim().parse::<usize>(), high.trim().parse::<usize>())
            {
                numbers.extend(low..=high);
            }
        }
        numbers
    }

    /// `program args…`, pinned: run through `taskset -c`, with Go's `GOMAXPROCS` and tokio's
    /// `TOKIO_WORKER_THREADS` set to the number of cores (each would see the affinity mask
    /// anyway; this makes it explicit).
    pub fn command(&self, program: &Path, args: &[String]) -> Command {
        let Some(cpus) = &self.cpus else {
            let mut command = Command::new(program);
            command.args(args);
            return command;
        };
        let cores = self.cpu_numbers().len().max(1).to_string();
        let mut command = Command::new("taskset");
        command
            .arg("-c")
            .arg(cpus)
            .arg(program)
            .args(args)
            .env("GOMAXPROCS", &cores)
            .env("TOKIO_WORKER_THREADS", &cores);
        command
    }
}

/// CPU time counted in the kernel's clock ticks (`USER_HZ`, 1/100 s on Linux), as in
/// `/proc/stat` and `/proc/<pid>/stat`.
fn clock_ticks(ticks: u64) -> Duration {
    Duration::from_millis(ticks * 10)
}

/// Time the given CPUs have spent busy (not idle, not waiting for I/O), from `/proc/stat`:
/// what everything pinned to them cost, PostgreSQL included.
pub fn busy_time(cpus: &[usize]) -> Duration {
    let Ok(stat) = std::fs::read_to_string("/proc/stat") else {
        return Duration::ZERO;
    };
    let mut ticks = 0u64;
    for line in stat.lines() {
        let mut fields = line.split_whitespace();
        let Some(cpu) = fields.next().and_then(|name| name.strip_prefix("cpu")) else {
            continue;
        };
        if !cpu.parse::<usize>().is_ok_and(|n| cpus.contains(&n)) {
            continue;
        }
        let values: Vec<u64> = fields.filter_map(|v| v.parse().ok()).collect();
        // user nice system idle iowait irq softirq steal …
        let total: u64 = values.iter().take(8).sum();
        let idle = values.get(3).copied().unwrap_or(0) + values.get(4).copied().unwrap_or(0);
        ticks += total.saturating_sub(idle);
    }
    clock_ticks(ticks)
}

/// A running child process, killed when dropped.
pub struct Server {
    child: Child,
    pub port: u16,
}

impl Server {
    /// Runs `program args…` pinned by `pinning` and waits until it accepts connections on
    /// `port`; its output goes to `log`.
    pub fn start(
        program: &Path,
        args: &[String],
        port: u16,
        log: &Path,
        pinning: &Pinning,
    ) -> anyhow::Result<Self> {
        let log_file = std::fs::File::create(log)?;
        let child = pinning
            .command(program, args)
            .stdout(log_file.try_clone()?)
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

    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

/// The resident memory of process `pid` now (`VmRSS`), or 0 if it cannot be read.
pub fn resident_bytes(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|status| status_kib(&status, "VmRSS:"))
        .map_or(0, |kib| kib * 1024)
}

/// The value in kiB of the `field` line of a `/proc/PID/status` page.
fn status_kib(status: &str, field: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()
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

    fn read(proc_dir: &str) -> Option<Usage> {
        let stat = std::fs::read_to_string(format!("{proc_dir}/stat")).ok()?;
        // Fields after the command name (which may hold spaces) in parentheses.
        let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
        let ticks: u64 =
            fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
        let status = std::fs::read_to_string(format!("{proc_dir}/status")).ok()?;
        let peak_kb = status_kib(&status, "VmHWM:")?;
        Some(Usage {
            cpu: clock_ticks(ticks),
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
