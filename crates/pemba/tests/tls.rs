//! The API port over TLS (`--tls-cert-path`, `--tls-key-path`): a client that trusts the
//! server's CA is answered; a plaintext client, a client that trusts another CA and one that
//! expects another name are not.

mod support;

use pemba_proto::authzed::api::v1 as api;
use pemba_proto::authzed::api::v1::permissions_service_client::PermissionsServiceClient;
use pemba_proto::authzed::api::v1::schema_service_client::SchemaServiceClient;
use rcgen::{BasicConstraints, Certificate, CertificateParams, IsCa, KeyPair};
use support::{authorized, free_port, viewer, Server};
use tonic::transport::{Certificate as TrustedCa, Channel, ClientTlsConfig};

/// A certificate authority: its certificate and key.
struct Authority {
    certificate: Certificate,
    key: KeyPair,
}

fn authority() -> Authority {
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA parameters");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let key = KeyPair::generate().expect("a CA key");
    let certificate = params.self_signed(&key).expect("a CA certificate");
    Authority { certificate, key }
}

/// A server certificate for `names`, signed by `ca`, and its key, both PEM.
fn server_certificate(ca: &Authority, names: &[&str]) -> (String, String) {
    let names = names.iter().map(|n| n.to_string()).collect::<Vec<_>>();
    let params = CertificateParams::new(names).expect("server parameters");
    let key = KeyPair::generate().expect("a server key");
    let certificate = params
        .signed_by(&key, &ca.certificate, &ca.key)
        .expect("a server certificate");
    (certificate.pem(), key.serialize_pem())
}

/// A channel to `port` over TLS, trusting `ca` and expecting the name `name`.
async fn tls_channel(
    port: u16,
    ca: &Authority,
    name: &str,
) -> Result<Channel, tonic::transport::Error> {
    let tls = ClientTlsConfig::new()
        .ca_certificate(TrustedCa::from_pem(ca.certificate.pem()))
        .domain_name(name);
    Channel::from_shared(format!("https://localhost:{port}"))
        .expect("a valid url")
        .tls_config(tls)?
        .connect()
        .await
}

async fn write_schema(channel: Channel) -> Result<(), tonic::Status> {
    let request = authorized(api::WriteSchemaRequest {
        schema: "definition user {}\ndefinition document {\n    relation viewer: user\n}".into(),
    });
    SchemaServiceClient::new(channel)
        .write_schema(request)
        .await
        .map(|_| ())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_answers_over_tls_only_clients_that_trust_its_certificate() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let ca = authority();
    let (certificate, key) = server_certificate(&ca, &["localhost"]);
    let cert_path = dir.path().join("server.pem");
    let key_path = dir.path().join("server.key");
    std::fs::write(&cert_path, certificate).expect("written");
    std::fs::write(&key_path, key).expect("written");
    let port = free_port();
    let args = [
        "--tls-cert-path".to_string(),
        cert_path.display().to_string(),
        "--tls-key-path".to_string(),
        key_path.display().to_string(),
    ];
    let _server = Server::start_with_args(&dir.path().join("data"), "off", port, &args);

    // Trusting the server's CA, by the name on its certificate: answered.
    let channel = tls_channel(port, &ca, "localhost")
        .await
        .expect("a TLS connection");
    write_schema(channel.clone())
        .await
        .expect("the schema is written over TLS");
    let view = viewer("plan", "tom");
    let check = authorized(api::CheckPermissionRequest {
        resource: view.resource,
        permission: "viewer".into(),
        subject: view.subject,
        ..Default::default()
    });
    let answer = PermissionsServiceClient::new(channel)
        .check_permission(check)
        .await
        .expect("a check over TLS")
        .into_inner();
    assert_eq!(
        answer.permissionship,
        api::check_permission_response::Permissionship::NoPermission as i32
    );

    // Plaintext: no answer.
    let plaintext = Channel::from_shared(format!("http://127.0.0.1:{port}"))
        .expect("a valid url")
        .connect()
        .await;
    if let Ok(channel) = plaintext {
        assert!(
            write_schema(channel).await.is_err(),
            "a plaintext call was answered"
        );
    }
    // Another CA, or another name: the handshake fails.
    let stranger = authority();
    let refused = match tls_channel(port, &stranger, "localhost").await {
        Ok(channel) => write_schema(channel).await.is_err(),
        Err(_) => true,
    };
    assert!(refused, "a client trusting another CA was answered");
    let refused = match tls_channel(port, &ca, "pemba.example.com").await {
        Ok(channel) => write_schema(channel).await.is_err(),
        Err(_) => true,
    };
    assert!(refused, "a client expecting another name was answered");
}
