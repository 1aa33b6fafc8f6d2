//! Certificates for the cluster port's mutual TLS in tests: CAs, node certificates (valid,
//! expired, naming another address) and the files `pemba serve` and `pemba cluster` read.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use rcgen::{
    date_time_ymd, BasicConstraints, Certificate, CertificateParams, ExtendedKeyUsagePurpose, IsCa,
    KeyPair,
};

/// A certificate authority.
pub struct TestCa {
    pub pem: String,
    certificate: Certificate,
    key: KeyPair,
}

/// A certificate and its key, PEM.
#[derive(Clone)]
pub struct Leaf {
    pub cert_der: Vec<u8>,
    pub cert_pem: String,
    pub key_pem: String,
}

impl TestCa {
    pub fn new(name: &str) -> TestCa {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA parameters");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        let key = KeyPair::generate().expect("a CA key");
        let certificate = params.self_signed(&key).expect("a CA certificate");
        TestCa {
            pem: certificate.pem(),
            certificate,
            key,
        }
    }

    /// A node certificate for `names` (IP addresses or DNS names), for server and client
    /// authentication.
    pub fn leaf(&self, names: &[&str]) -> Leaf {
        self.sign(node_params(names))
    }

    /// Like [`TestCa::leaf`], valid only during 2020.
    pub fn expired_leaf(&self, names: &[&str]) -> Leaf {
        let mut params = node_params(names);
        params.not_before = date_time_ymd(2020, 1, 1);
        params.not_after = date_time_ymd(2021, 1, 1);
        self.sign(params)
    }

    fn sign(&self, params: CertificateParams) -> Leaf {
        let key = KeyPair::generate().expect("a node key");
        let certificate = params
            .signed_by(&key, &self.certificate, &self.key)
            .expect("a node certificate");
        Leaf {
            cert_der: certificate.der().to_vec(),
            cert_pem: certificate.pem(),
            key_pem: key.serialize_pem(),
        }
    }
}

fn node_params(names: &[&str]) -> CertificateParams {
    let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
    let mut params = CertificateParams::new(names).expect("node parameters");
    params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    params
}

/// One party's three files: certificate, key, CA bundle.
#[derive(Clone, Debug)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub ca: PathBuf,
}

impl TlsFiles {
    /// Writes `leaf` and the CA bundle `ca_pem` into `dir`.
    pub fn write(dir: &Path, leaf: &Leaf, ca_pem: &str) -> TlsFiles {
        std::fs::create_dir_all(dir).expect("a certificate directory");
        let files = TlsFiles {
            cert: dir.join("node.pem"),
            key: dir.join("node.key"),
            ca: dir.join("ca.pem"),
        };
        files.replace_leaf(leaf);
        files.replace_ca(ca_pem);
        files
    }

    /// Replaces the certificate and key, each file atomically (as a rotation would).
    pub fn replace_leaf(&self, leaf: &Leaf) {
        replace(&self.key, &leaf.key_pem);
        replace(&self.cert, &leaf.cert_pem);
    }

    /// Replaces the CA bundle atomically.
    pub fn replace_ca(&self, ca_pem: &str) {
        replace(&self.ca, ca_pem);
    }

    /// The flags naming these files.
    pub fn args(&self) -> Vec<String> {
        [
            ("--cluster-tls-cert-path", &self.cert),
            ("--cluster-tls-key-path", &self.key),
            ("--cluster-tls-ca-path", &self.ca),
        ]
        .into_iter()
        .flat_map(|(flag, path)| [flag.to_string(), path.display().to_string()])
        .collect()
    }

    /// The environment naming these files (as `pemba cluster` reads it).
    pub fn env(&self) -> Vec<(String, String)> {
        [
            ("PEMBA_CLUSTER_TLS_CERT_PATH", &self.cert),
            ("PEMBA_CLUSTER_TLS_KEY_PATH", &self.key),
            ("PEMBA_CLUSTER_TLS_CA_PATH", &self.ca),
        ]
        .into_iter()
        .map(|(name, path)| (name.to_string(), path.display().to_string()))
        .collect()
    }

    pub fn paths(&self) -> pemba_peer_tls::TlsPaths {
        pemba_peer_tls::TlsPaths {
            cert: self.cert.clone(),
            key: self.key.clone(),
            ca: self.ca.clone(),
        }
    }
}

fn replace(path: &Path, contents: &str) {
    let staged = path.with_extension("staged");
    std::fs::write(&staged, contents).expect("a staged file");
    std::fs::rename(&staged, path).expect("the file replaced");
}

/// The files every local test cluster's nodes and `pemba cluster` use: one CA, one
/// certificate naming 127.0.0.1 (where every test node listens). Made once per test process.
pub fn local_tls() -> &'static TlsFiles {
    static FILES: OnceLock<TlsFiles> = OnceLock::new();
    FILES.get_or_init(|| {
        let dir = tempfile::tempdir().expect("a temp dir").keep();
        let ca = TestCa::new("pemba test cluster CA");
        TlsFiles::write(&dir, &ca.leaf(&["127.0.0.1"]), &ca.pem)
    })
}
