//! The client certificate a Raft message came with must name its sender's cluster address.

use pemba_cluster::{SenderCheck, SenderRefusal};
use rustls_pki_types::ServerName;
use tonic::transport::server::{TcpConnectInfo, TlsConnectInfo};
use tonic::Extensions;

/// A member speaks over mutual TLS only with a certificate naming its own cluster address (the
/// host of `host:port`, as a DNS name, wildcard or IP address): a node's certificate does not
/// let it vote or append entries as another node.
#[derive(Debug, Clone, Copy, Default)]
pub struct CertificateNamesSender;

impl SenderCheck for CertificateNamesSender {
    fn may_speak_for(&self, extensions: &Extensions, addr: &str) -> Result<(), SenderRefusal> {
        let leaf = extensions
            .get::<TlsConnectInfo<TcpConnectInfo>>()
            .and_then(TlsConnectInfo::peer_certs)
            .and_then(|chain| chain.first().cloned())
            .ok_or(SenderRefusal::NoCertificate)?;
        let not_named =
            |source: Box<dyn std::error::Error + Send + Sync>| SenderRefusal::NotNamed {
                addr: addr.to_string(),
                source,
            };
        let host = host(addr);
        let name = ServerName::try_from(host).map_err(|e| not_named(Box::new(e)))?;
        let certificate =
            webpki::EndEntityCert::try_from(&leaf).map_err(|e| not_named(Box::new(e)))?;
        certificate
            .verify_is_valid_for_subject_name(&name)
            .map_err(|e| not_named(Box::new(e)))
    }
}

/// The host of `host:port` or `[v6]:port`.
fn host(addr: &str) -> &str {
    let host = addr.rsplit_once(':').map_or(addr, |(host, _)| host);
    host.trim_start_matches('[').trim_end_matches(']')
}
