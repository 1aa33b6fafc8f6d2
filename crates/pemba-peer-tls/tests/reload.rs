//! Reloading the cluster port's TLS files: unchanged files do nothing, a half-done rotation
//! keeps the previous material, a finished one replaces it.

use std::path::Path;
use std::sync::Arc;

use pemba_peer_tls::{PeerTls, Reload, TlsError, TlsPaths};
use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};

/// A CA's PEM, and a certificate and key it signed for 127.0.0.1.
fn ca_and_leaves(count: usize) -> (String, Vec<(String, String)>) {
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA parameters");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_key = KeyPair::generate().expect("a key");
    let ca = params.self_signed(&ca_key).expect("a CA");
    let leaves = (0..count)
        .map(|_| {
            let key = KeyPair::generate().expect("a key");
            let params = CertificateParams::new(vec!["127.0.0.1".to_string()]).expect("params");
            let cert = params.signed_by(&key, &ca, &ca_key).expect("a leaf");
            (cert.pem(), key.serialize_pem())
        })
        .collect();
    (ca.pem(), leaves)
}

fn paths(dir: &Path) -> TlsPaths {
    TlsPaths {
        cert: dir.join("node.pem"),
        key: dir.join("node.key"),
        ca: dir.join("ca.pem"),
    }
}

fn write(paths: &TlsPaths, ca: &str, (cert, key): &(String, String)) {
    std::fs::write(&paths.ca, ca).expect("written");
    std::fs::write(&paths.cert, cert).expect("written");
    std::fs::write(&paths.key, key).expect("written");
}

#[test]
fn a_rotation_takes_effect_once_certificate_and_key_match() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let paths = paths(dir.path());
    let (ca, leaves) = ca_and_leaves(2);
    write(&paths, &ca, &leaves[0]);
    let tls = PeerTls::load(paths.clone()).expect("loads");
    let first = tls.server_config();
    assert!(matches!(tls.reload(), Ok(Reload::Unchanged)));

    // The certificate replaced, the key not yet: refused, the old material stays.
    std::fs::write(&paths.cert, &leaves[1].0).expect("written");
    assert!(matches!(tls.reload(), Err(TlsError::Identity { .. })));
    assert!(Arc::ptr_eq(&first, &tls.server_config()));
    // Nothing changed since: not tried (nor logged) again.
    assert!(matches!(tls.reload(), Ok(Reload::Unchanged)));

    std::fs::write(&paths.key, &leaves[1].1).expect("written");
    assert!(matches!(tls.reload(), Ok(Reload::Replaced)));
    assert!(!Arc::ptr_eq(&first, &tls.server_config()));
}

#[test]
fn unusable_files_are_refused_at_load_saying_which() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let paths = paths(dir.path());
    let (ca, leaves) = ca_and_leaves(1);
    write(&paths, &ca, &leaves[0]);
    std::fs::write(&paths.ca, "not a certificate").expect("written");
    let error = PeerTls::load(paths.clone()).expect_err("no CA");
    assert!(matches!(error, TlsError::NoCertificate { ref path } if *path == paths.ca));
    std::fs::remove_file(&paths.key).expect("removed");
    let error = PeerTls::load(paths.clone()).expect_err("no key");
    assert!(error.to_string().contains("node.key"), "{error}");
}
