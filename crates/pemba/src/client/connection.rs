//! Connecting to an `authzed.api.v1` endpoint: plaintext or TLS, the preshared key as a bearer
//! token on every call, and a timeout on every call that is not a long-lived stream.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::Args;
use pemba_proto::authzed::api::v1::permissions_service_client::PermissionsServiceClient;
use pemba_proto::authzed::api::v1::schema_service_client::SchemaServiceClient;
use pemba_proto::authzed::api::v1::watch_service_client::WatchServiceClient;
use tonic::metadata::AsciiMetadataValue;
use tonic::service::interceptor::InterceptedService;
use tonic::service::Interceptor;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint};
use tonic::{Request, Status};

/// The largest response accepted, in bytes (export pages can be large).
const MAX_RESPONSE_BYTES: usize = 64 * 1024 * 1024;

/// Where and how to connect; accepted after any client subcommand.
#[derive(Args, Debug)]
#[command(next_help_heading = "Connection options")]
pub struct ClientOptions {
    /// The gRPC endpoint, `host:port` (an `http://` or `https://` prefix is accepted).
    #[arg(
        long,
        global = true,
        default_value = "127.0.0.1:50051",
        env = "PEMBA_ENDPOINT"
    )]
    endpoint: String,
    /// The preshared key, sent as `authorization: Bearer <token>`.
    #[arg(long, global = true, env = "PEMBA_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Connect in plaintext, even if a CA is configured (plaintext is the default without one).
    #[arg(long, global = true)]
    insecure: bool,
    /// PEM certificate of the CA that signed the server's certificate: connect with TLS.
    #[arg(long, global = true, env = "PEMBA_TLS_CA_PATH")]
    tls_ca_path: Option<PathBuf>,
    /// Timeout for connecting and for each call (streams of unbounded length excepted).
    #[arg(long, global = true, default_value = "30s", value_parser = humantime::parse_duration)]
    request_timeout: Duration,
    /// Print responses as JSON.
    #[arg(long, global = true)]
    pub json: bool,
}

impl ClientOptions {
    fn tls_ca_path(&self) -> Option<&PathBuf> {
        self.tls_ca_path.as_ref().filter(|_| !self.insecure)
    }

    /// The endpoint as a URL whose scheme says whether TLS is used.
    fn url(&self) -> anyhow::Result<String> {
        let tls = self.tls_ca_path().is_some();
        let address = match self.endpoint.split_once("://") {
            None => self.endpoint.as_str(),
            Some(("http", address)) if !tls => address,
            Some(("https", address)) if tls => address,
            Some(("https", _)) => bail!("an https:// endpoint needs --tls-ca-path"),
            Some(_) => bail!(
                "endpoint {}: expected host:port, http://host:port or https://host:port",
                self.endpoint
            ),
        };
        Ok(format!(
            "{}://{address}",
            if tls { "https" } else { "http" }
        ))
    }

    async fn channel(&self) -> anyhow::Result<Channel> {
        let url = self.url()?;
        let mut endpoint = Endpoint::from_shared(url.clone())
            .with_context(|| format!("invalid endpoint {}", self.endpoint))?
            .connect_timeout(self.request_timeout);
        if let Some(path) = self.tls_ca_path() {
            let pem = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
            let tls = ClientTlsConfig::new().ca_certificate(Certificate::from_pem(pem));
            endpoint = endpoint.tls_config(tls).context("configuring TLS")?;
        }
        endpoint
            .connect()
            .await
            .with_context(|| format!("connecting to {url}"))
    }

    fn bearer(&self) -> anyhow::Result<Bearer> {
        let header = match &self.token {
            None => None,
            Some(token) => Some(
                format!("Bearer {token}")
                    .parse()
                    .context("the token must be printable ASCII")?,
            ),
        };
        Ok(Bearer(header))
    }
}

/// Adds `authorization: Bearer <token>` to every call, when a token was given.
#[derive(Clone)]
pub struct Bearer(Option<AsciiMetadataValue>);

impl Interceptor for Bearer {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        if let Some(header) = &self.0 {
            request
                .metadata_mut()
                .insert("authorization", header.clone());
        }
        Ok(request)
    }
}

type Authenticated = InterceptedService<Channel, Bearer>;

/// Clients of the three services over one connection.
pub struct Client {
    permissions: PermissionsServiceClient<Authenticated>,
    schema: SchemaServiceClient<Authenticated>,
    watch: WatchServiceClient<Authenticated>,
    timeout: Duration,
}

impl Client {
    pub async fn connect(options: &ClientOptions) -> anyhow::Result<Client> {
        let bearer = options.bearer()?;
        let channel = options.channel().await?;
        Ok(Client {
            permissions: PermissionsServiceClient::with_interceptor(
                channel.clone(),
                bearer.clone(),
            )
            .max_decoding_message_size(MAX_RESPONSE_BYTES),
            schema: SchemaServiceClient::with_interceptor(channel.clone(), bearer.clone()),
            watch: WatchServiceClient::with_interceptor(channel, bearer),
            timeout: options.request_timeout,
        })
    }

    pub fn permissions(&self) -> PermissionsServiceClient<Authenticated> {
        self.permissions.clone()
    }

    pub fn schema(&self) -> SchemaServiceClient<Authenticated> {
        self.schema.clone()
    }

    pub fn watch(&self) -> WatchServiceClient<Authenticated> {
        self.watch.clone()
    }

    /// A request that fails with `DeadlineExceeded` after the request timeout.
    pub fn request<T>(&self, message: T) -> Request<T> {
        let mut request = Request::new(message);
        request.set_timeout(self.timeout);
        request
    }
}
