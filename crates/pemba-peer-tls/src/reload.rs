//! The material in use, re-read when its files change: certificates and the CA bundle rotate
//! without a restart.

use std::sync::Arc;
use std::time::Duration;

use parking_lot::{Mutex, RwLock};
use tokio_rustls::rustls::{ClientConfig, ServerConfig};

use crate::error::TlsError;
use crate::material::{FileBytes, Material, TlsPaths};

/// A node's cluster-port TLS material. Every new connection, in either direction, takes the
/// material current when it starts; connections already open keep theirs.
///
/// A reload that fails (a file half-written, a key not matching the certificate because only
/// one of the two was replaced yet) keeps the previous material and says why; it is tried again
/// once the files change again.
#[derive(Debug)]
pub struct PeerTls {
    paths: TlsPaths,
    current: RwLock<Arc<Material>>,
    /// The bytes last read, good or not: a reload of the same bytes does nothing.
    last_read: Mutex<FileBytes>,
}

/// What a reload did.
#[derive(Debug, PartialEq, Eq)]
pub enum Reload {
    /// The files had not changed since they were last read.
    Unchanged,
    /// New material is in use.
    Replaced,
}

impl PeerTls {
    /// Reads the files at `paths`; refuses material that does not make both configurations.
    pub fn load(paths: TlsPaths) -> Result<Arc<PeerTls>, TlsError> {
        let bytes = FileBytes::read(&paths)?;
        let material = Material::from_bytes(&paths, &bytes)?;
        Ok(Arc::new(PeerTls {
            paths,
            current: RwLock::new(Arc::new(material)),
            last_read: Mutex::new(bytes),
        }))
    }

    /// The files the material is read from.
    pub fn paths(&self) -> &TlsPaths {
        &self.paths
    }

    /// The configuration for the next incoming connection.
    pub fn server_config(&self) -> Arc<ServerConfig> {
        self.current.read().server.clone()
    }

    /// The configuration for the next outgoing connection.
    pub fn client_config(&self) -> Arc<ClientConfig> {
        self.current.read().client.clone()
    }

    /// Reads the files again and, if they changed and make good material, uses it from now on.
    /// Blocks on file reads: call it off the async runtime (see [`PeerTls::watch`]).
    pub fn reload(&self) -> Result<Reload, TlsError> {
        let bytes = FileBytes::read(&self.paths)?;
        {
            let mut last_read = self.last_read.lock();
            if *last_read == bytes {
                return Ok(Reload::Unchanged);
            }
            *last_read = bytes.clone();
        }
        let material = Material::from_bytes(&self.paths, &bytes)?;
        *self.current.write() = Arc::new(material);
        Ok(Reload::Replaced)
    }

    /// Reloads on a blocking thread and logs what happened: a replacement at info, a failure
    /// (the previous material stays in use) at error.
    pub async fn reload_and_log(self: &Arc<Self>) {
        let tls = self.clone();
        match tokio::task::spawn_blocking(move || tls.reload()).await {
            Ok(Ok(Reload::Replaced)) => tracing::info!(
                cert = %self.paths.cert.display(),
                ca = %self.paths.ca.display(),
                "cluster TLS certificates reloaded: new connections use them"
            ),
            Ok(Ok(Reload::Unchanged)) => {}
            Ok(Err(error)) => tracing::error!(
                %error,
                "cluster TLS certificates not reloaded: the previous ones stay in use"
            ),
            Err(error) => tracing::error!(%error, "cluster TLS reload did not finish"),
        }
    }

    /// Reloads every `every` while the runtime runs.
    pub fn watch(self: &Arc<Self>, every: Duration) -> tokio::task::JoinHandle<()> {
        let tls = self.clone();
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(every);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            ticks.tick().await;
            loop {
                ticks.tick().await;
                tls.reload_and_log().await;
            }
        })
    }
}
