//! The emulator's private CA and server certificate.
//!
//! Generated once per state directory and reused, so a client that trusted `ca.pem` keeps
//! trusting the emulator across restarts.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose,
};

use super::error::EmulatorError;
use super::files::{write_private, write_public as write};

/// File names inside the state directory.
pub(crate) const CA_CERT_FILE: &str = "ca.pem";
const CA_KEY_FILE: &str = "ca-key.pem";
const SERVER_CERT_FILE: &str = "server.pem";
const SERVER_KEY_FILE: &str = "server-key.pem";
pub(crate) const CA_BUNDLE_FILE: &str = "ca-bundle.pem";

/// Where the system's trusted roots live on Debian-like systems; others get a CA-only bundle.
const SYSTEM_ROOTS: &str = "/etc/ssl/certs/ca-certificates.crt";

/// PEM material the server needs.
pub(crate) struct TlsMaterial {
    pub ca_cert_path: PathBuf,
    pub ca_bundle_path: PathBuf,
    pub server_config: Arc<rustls::ServerConfig>,
}

/// Loads the CA and server certificate from `dir`, generating them if any piece is missing.
pub(crate) fn load_or_create(dir: &Path) -> Result<TlsMaterial, EmulatorError> {
    let paths = [CA_CERT_FILE, CA_KEY_FILE, SERVER_CERT_FILE, SERVER_KEY_FILE].map(|f| dir.join(f));
    if !paths.iter().all(|p| p.is_file()) {
        generate(dir)?;
    }
    let ca_pem = read(&dir.join(CA_CERT_FILE))?;
    let server_pem = read(&dir.join(SERVER_CERT_FILE))?;
    let key_pem = read(&dir.join(SERVER_KEY_FILE))?;

    let chain = rustls_pemfile::certs(&mut server_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| EmulatorError::Tls(format!("{SERVER_CERT_FILE}: {e}")))?;
    let key = rustls_pemfile::private_key(&mut key_pem.as_bytes())
        .map_err(|e| EmulatorError::Tls(format!("{SERVER_KEY_FILE}: {e}")))?
        .ok_or_else(|| EmulatorError::Tls(format!("{SERVER_KEY_FILE}: no private key")))?;

    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| EmulatorError::Tls(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| EmulatorError::Tls(e.to_string()))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];

    let ca_bundle_path = dir.join(CA_BUNDLE_FILE);
    write_bundle(&ca_bundle_path, &ca_pem)?;
    Ok(TlsMaterial {
        ca_cert_path: dir.join(CA_CERT_FILE),
        ca_bundle_path,
        server_config: Arc::new(config),
    })
}

fn generate(dir: &Path) -> Result<(), EmulatorError> {
    log::info!(
        "generating emulator CA and server certificate in {}",
        dir.display()
    );
    let tls = |e: rcgen::Error| EmulatorError::Tls(e.to_string());

    let ca_key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).map_err(tls)?;
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).map_err(tls)?;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "akspolicy emulator CA");
    ca_params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    set_validity(&mut ca_params);
    let ca_cert = ca_params.self_signed(&ca_key).map_err(tls)?;

    let server_key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).map_err(tls)?;
    // rcgen turns SAN strings that parse as IP addresses into iPAddress entries.
    let mut server_params = CertificateParams::new(vec![
        "localhost".to_string(),
        "127.0.0.1".to_string(),
        "::1".to_string(),
    ])
    .map_err(tls)?;
    server_params
        .distinguished_name
        .push(DnType::CommonName, "localhost");
    server_params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    server_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    set_validity(&mut server_params);
    let server_cert = server_params
        .signed_by(&server_key, &ca_cert, &ca_key)
        .map_err(tls)?;

    write_private(&dir.join(CA_KEY_FILE), ca_key.serialize_pem().as_bytes())?;
    write_private(
        &dir.join(SERVER_KEY_FILE),
        server_key.serialize_pem().as_bytes(),
    )?;
    write(&dir.join(SERVER_CERT_FILE), server_cert.pem().as_bytes())?;
    // Written last: its presence is what tells clients the set is complete.
    write(&dir.join(CA_CERT_FILE), ca_cert.pem().as_bytes())?;
    Ok(())
}

fn set_validity(params: &mut CertificateParams) {
    // A wide fixed window: the machines running tests may have odd clocks, and the state
    // directory is throwaway test data rather than a long-lived deployment.
    params.not_before = rcgen::date_time_ymd(2020, 1, 1);
    params.not_after = rcgen::date_time_ymd(2099, 12, 31);
}

/// System roots followed by the emulator CA, so one `SSL_CERT_FILE` serves every client.
fn write_bundle(path: &Path, ca_pem: &str) -> Result<(), EmulatorError> {
    let mut bundle = std::fs::read_to_string(SYSTEM_ROOTS).unwrap_or_default();
    if !bundle.is_empty() && !bundle.ends_with('\n') {
        bundle.push('\n');
    }
    bundle.push_str(ca_pem);
    write(path, bundle.as_bytes())
}

fn read(path: &Path) -> Result<String, EmulatorError> {
    std::fs::read_to_string(path).map_err(|source| EmulatorError::Io {
        path: path.to_path_buf(),
        source,
    })
}
