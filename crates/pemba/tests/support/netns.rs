//! `pemba serve` processes in network namespaces, each with a cluster link and a client link,
//! so that a test can cut a node off from its peers while still reaching it as a client. Needs
//! root (CI runs as root).
//!
//! Addresses: node `i` of network `k` has cluster address `10.77.k.i` (on one bridge) and
//! client address `10.78.k.i` (on another, where the test process has `10.78.k.254`).

use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::{Duration, Instant};

use super::KEY;

/// The cluster port of every node.
pub const CLUSTER_PORT: u16 = 50061;
/// The gRPC port of every node.
pub const GRPC_PORT: u16 = 50051;
/// The metrics port of every node.
pub const METRICS_PORT: u16 = 9090;

/// Whether this process runs as root (network namespaces need it).
pub fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

fn run(args: &[&str]) {
    let output = Command::new(args[0])
        .args(&args[1..])
        .output()
        .unwrap_or_else(|e| panic!("{args:?}: {e}"));
    assert!(
        output.status.success(),
        "{args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Runs `args`, ignoring failure (for cleaning up what may not exist).
fn run_quietly(args: &[&str]) {
    let _ = Command::new(args[0])
        .args(&args[1..])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// The namespaces, links and bridges of one test's nodes; all removed when dropped.
pub struct Net {
    k: u8,
    nodes: u8,
}

impl Net {
    /// Namespaces and links for nodes `1..=nodes`.
    pub fn new(nodes: u8) -> Net {
        static NEXT: AtomicU8 = AtomicU8::new(0);
        let k = (std::process::id() % 100) as u8 + 100 + NEXT.fetch_add(1, Ordering::SeqCst) % 50;
        let net = Net { k, nodes };
        net.remove(); // leftovers of an earlier run that was killed
        let (cluster, client) = (net.cluster_bridge(), net.client_bridge());
        run(&["ip", "link", "add", &cluster, "type", "bridge"]);
        run(&["ip", "link", "set", &cluster, "up"]);
        run(&["ip", "link", "add", &client, "type", "bridge"]);
        run(&[
            "ip",
            "addr",
            "add",
            &format!("10.78.{k}.254/24"),
            "dev",
            &client,
        ]);
        run(&["ip", "link", "set", &client, "up"]);
        for i in 1..=nodes {
            let ns = net.namespace(i);
            run(&["ip", "netns", "add", &ns]);
            run(&["ip", "netns", "exec", &ns, "ip", "link", "set", "lo", "up"]);
            net.link(i, "c", &cluster, &format!("10.77.{k}.{i}/24"));
            net.link(i, "a", &client, &format!("10.78.{k}.{i}/24"));
        }
        net
    }

    fn cluster_bridge(&self) -> String {
        format!("pbc{}", self.k)
    }

    fn client_bridge(&self) -> String {
        format!("pba{}", self.k)
    }

    pub fn namespace(&self, node: u8) -> String {
        format!("pemba-{}-{node}", self.k)
    }

    /// The root side of node `node`'s link of `kind` (`c`luster or client `a`ddress).
    fn host_end(&self, node: u8, kind: &str) -> String {
        format!("p{kind}{}n{node}", self.k)
    }

    /// A veth pair: one end on `bridge`, the other in the node's namespace with `cidr`.
    fn link(&self, node: u8, kind: &str, bridge: &str, cidr: &str) {
        let (host, inner) = (
            self.host_end(node, kind),
            format!("t{kind}{}n{node}", self.k),
        );
        let ns = self.namespace(node);
        run(&[
            "ip", "link", "add", &host, "type", "veth", "peer", "name", &inner,
        ]);
        run(&["ip", "link", "set", &inner, "netns", &ns]);
        run(&["ip", "link", "set", &host, "master", bridge]);
        run(&["ip", "link", "set", &host, "up"]);
        run(&[
            "ip", "netns", "exec", &ns, "ip", "addr", "add", cidr, "dev", &inner,
        ]);
        run(&[
            "ip", "netns", "exec", &ns, "ip", "link", "set", &inner, "up",
        ]);
    }

    /// Node `node`'s cluster address.
    pub fn cluster_addr(&self, node: u8) -> String {
        format!("10.77.{}.{node}:{CLUSTER_PORT}", self.k)
    }

    /// Node `node`'s client IP address.
    pub fn client_ip(&self, node: u8) -> String {
        format!("10.78.{}.{node}", self.k)
    }

    /// `--initial-members` for every node.
    pub fn members(&self) -> String {
        (1..=self.nodes)
            .map(|i| format!("{i}={}", self.cluster_addr(i)))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Cuts node `node`'s cluster link; its client link stays up.
    pub fn cut(&self, node: u8) {
        run(&["ip", "link", "set", &self.host_end(node, "c"), "down"]);
    }

    /// Restores node `node`'s cluster link.
    pub fn heal(&self, node: u8) {
        run(&["ip", "link", "set", &self.host_end(node, "c"), "up"]);
    }

    fn remove(&self) {
        for i in 1..=self.nodes {
            run_quietly(&["ip", "netns", "del", &self.namespace(i)]);
            run_quietly(&["ip", "link", "del", &self.host_end(i, "c")]);
            run_quietly(&["ip", "link", "del", &self.host_end(i, "a")]);
        }
        run_quietly(&["ip", "link", "del", &self.cluster_bridge()]);
        run_quietly(&["ip", "link", "del", &self.client_bridge()]);
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        self.remove();
    }
}

/// A `pemba serve` process in node `id`'s namespace, killed when dropped. Its log goes to
/// `serve.log` beside its data directory.
pub struct NetNode {
    pub id: u8,
    namespace: String,
    client_ip: String,
    dir: PathBuf,
    args: Vec<String>,
    child: Option<Child>,
}

impl NetNode {
    /// Node `id` of `net`, with its data under `root`, started with the cluster flags and
    /// `extra` arguments.
    pub fn new(net: &Net, root: &Path, id: u8, extra: &[&str]) -> NetNode {
        let mut args: Vec<String> = [
            "serve",
            "--grpc-preshared-key",
            KEY,
            "--node-id",
            &id.to_string(),
            "--grpc-addr",
            &format!("{}:{GRPC_PORT}", net.client_ip(id)),
            "--metrics-addr",
            &format!("{}:{METRICS_PORT}", net.client_ip(id)),
            "--cluster-addr",
            &net.cluster_addr(id),
            "--initial-members",
            &net.members(),
            "--cluster-secret",
            "netns-test-secret",
            // The namespaces' network is this test's own.
            "--cluster-insecure",
        ]
        .map(String::from)
        .to_vec();
        args.extend(extra.iter().map(|a| a.to_string()));
        NetNode {
            id,
            namespace: net.namespace(id),
            client_ip: net.client_ip(id),
            dir: root.join(format!("node-{id}")),
            args,
            child: None,
        }
    }

    pub fn start(&mut self) {
        std::fs::create_dir_all(&self.dir).expect("the data directory");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .expect("the log file");
        let child = Command::new("ip")
            .args([
                "netns",
                "exec",
                &self.namespace,
                env!("CARGO_BIN_EXE_pemba"),
            ])
            .args(&self.args)
            .arg("--data-dir")
            .arg(self.dir.join("data"))
            .env("PEMBA_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("pemba serve starts");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(self.grpc_addr()).is_err() {
            assert!(
                Instant::now() < deadline,
                "node {} did not listen:\n{}",
                self.id,
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn log_path(&self) -> PathBuf {
        self.dir.join("serve.log")
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    pub fn grpc_addr(&self) -> SocketAddr {
        format!("{}:{GRPC_PORT}", self.client_ip)
            .parse()
            .expect("an address")
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.grpc_addr())
    }

    pub fn metrics_addr(&self) -> String {
        format!("{}:{METRICS_PORT}", self.client_ip)
    }

    /// Waits up to `within` for the process to exit; its status, if it did.
    pub fn wait_exit(&mut self, within: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + within;
        let child = self.child.as_mut()?;
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                return Some(status);
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for NetNode {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
