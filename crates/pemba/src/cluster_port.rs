//! The cluster port's security: mutual TLS from three files, or plaintext only where nothing
//! beyond this machine can listen in (or the operator said so).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::Args;
use pemba_cluster::{Dialer, Replica, SenderCheck, TcpDialer};
use pemba_peer_tls::{CertificateNamesSender, PeerTls, TlsDialer, TlsPaths};
use tokio::net::TcpListener;

/// The cluster port's mutual-TLS files: all three, or none. `pemba serve` presents the
/// certificate to its peers (as server and as client) and re-reads the files on change and on
/// SIGHUP; `pemba cluster` presents it to the node it asks.
#[derive(Args, Debug, Clone)]
pub struct ClusterTlsArgs {
    /// PEM certificate chain for the cluster port. A node's must name its --cluster-addr host
    /// (a DNS or IP subject alternative name) and allow server and client authentication.
    #[arg(
        long,
        env = "PEMBA_CLUSTER_TLS_CERT_PATH",
        requires_all = ["cluster_tls_key_path", "cluster_tls_ca_path"]
    )]
    pub cluster_tls_cert_path: Option<PathBuf>,
    /// PEM private key of --cluster-tls-cert-path.
    #[arg(
        long,
        env = "PEMBA_CLUSTER_TLS_KEY_PATH",
        requires = "cluster_tls_cert_path"
    )]
    pub cluster_tls_key_path: Option<PathBuf>,
    /// PEM bundle of the CA certificates the other end's certificate must chain to (old and
    /// new together while the CA rotates).
    #[arg(
        long,
        env = "PEMBA_CLUSTER_TLS_CA_PATH",
        requires = "cluster_tls_cert_path"
    )]
    pub cluster_tls_ca_path: Option<PathBuf>,
}

impl ClusterTlsArgs {
    /// The files, if TLS was asked for.
    pub fn paths(&self) -> Option<TlsPaths> {
        match (
            &self.cluster_tls_cert_path,
            &self.cluster_tls_key_path,
            &self.cluster_tls_ca_path,
        ) {
            (Some(cert), Some(key), Some(ca)) => Some(TlsPaths {
                cert: cert.clone(),
                key: key.clone(),
                ca: ca.clone(),
            }),
            _ => None,
        }
    }

    /// The material, read now, if TLS was asked for.
    pub fn load(&self) -> anyhow::Result<Option<Arc<PeerTls>>> {
        self.paths()
            .map(|paths| PeerTls::load(paths).context("loading the cluster TLS files"))
            .transpose()
    }
}

/// How a node's cluster port is secured.
pub enum PeerSecurity {
    Tls(Arc<PeerTls>),
    Plaintext,
}

impl PeerSecurity {
    /// TLS if `tls` names the files; plaintext on a loopback `listen` address, or elsewhere only
    /// with `insecure` (and a warning).
    pub fn choose(
        tls: &ClusterTlsArgs,
        insecure: bool,
        listen: SocketAddr,
    ) -> anyhow::Result<PeerSecurity> {
        if let Some(tls) = tls.load()? {
            return Ok(PeerSecurity::Tls(tls));
        }
        if !listen.ip().is_loopback() {
            if !insecure {
                bail!(
                    "the cluster port would listen on {listen}, reachable from other machines, and carry every relationship and the cluster secret in clear text: give it mutual TLS (--cluster-tls-cert-path, --cluster-tls-key-path, --cluster-tls-ca-path) or, on a network you trust, pass --cluster-insecure"
                );
            }
            tracing::warn!(
                %listen,
                "the cluster port listens beyond this machine without TLS (--cluster-insecure): anyone on the network can read the relationships replicated and replay the cluster secret"
            );
        }
        Ok(PeerSecurity::Plaintext)
    }

    /// How this node dials its peers.
    pub fn dialer(&self) -> Arc<dyn Dialer> {
        match self {
            PeerSecurity::Tls(tls) => Arc::new(TlsDialer::new(tls.clone())),
            PeerSecurity::Plaintext => Arc::new(TcpDialer),
        }
    }

    /// Serves the cluster port on `listener` while the process runs; with TLS, re-reads the
    /// files every `reload_every` and on SIGHUP.
    pub fn serve(
        self,
        listener: TcpListener,
        replica: Arc<Replica>,
        secret: String,
        reload_every: Duration,
    ) {
        let forever = std::future::pending::<()>();
        tokio::spawn(async move {
            let served = match self {
                PeerSecurity::Tls(tls) => {
                    tls.watch(reload_every);
                    reload_on_hangup(tls.clone());
                    let incoming = pemba_peer_tls::incoming(listener, tls);
                    let senders: Arc<dyn SenderCheck> = Arc::new(CertificateNamesSender);
                    pemba_cluster::serve_peers(replica, &secret, Some(senders), incoming, forever)
                        .await
                }
                PeerSecurity::Plaintext => {
                    let incoming = crate::incoming::without_delay(listener);
                    pemba_cluster::serve_peers(replica, &secret, None, incoming, forever).await
                }
            };
            if let Err(e) = served {
                tracing::error!(error = %e, "cluster port stopped");
            }
        });
    }
}

/// Re-reads the TLS files on each SIGHUP.
fn reload_on_hangup(tls: Arc<PeerTls>) {
    use tokio::signal::unix::{signal, SignalKind};
    let mut hangups = match signal(SignalKind::hangup()) {
        Ok(hangups) => hangups,
        Err(error) => {
            tracing::warn!(%error, "no SIGHUP handler: the cluster TLS files are re-read on their schedule only");
            return;
        }
    };
    tokio::spawn(async move {
        while hangups.recv().await.is_some() {
            tls.reload_and_log().await;
        }
    });
}
