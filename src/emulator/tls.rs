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
/// When the set expires and which generation of the CA profile made it (unix seconds, a
/// number): an older or soon-to-expire set is replaced.
const CA_EXPIRY_FILE: &str = "ca-expiry.json";

/// Bump when the CA's profile changes so sets made by older versions are replaced (2: name
/// constraints and a one-year lifetime).
const CA_GENERATION: u64 = 2;
/// Lifetime of the CA and server certificate.
const CERT_LIFETIME: std::time::Duration = std::time::Duration::from_secs(365 * 24 * 3600);
/// A set closer than this to its expiry is replaced at start.
const RENEW_BEFORE: std::time::Duration = std::time::Duration::from_secs(30 * 24 * 3600);
/// Clocks of test machines and containers drift; certificates start to be valid this early.
const BACKDATE: std::time::Duration = std::time::Duration::from_secs(24 * 3600);

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
    if !paths.iter().all(|p| p.is_file()) || !current(dir) {
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

    let now = std::time::SystemTime::now();
    let (ca_cert, ca_key) = new_ca(now).map_err(tls)?;

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
    set_validity(&mut server_params, now);
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
    let expires = (now + CERT_LIFETIME)
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    write(
        &dir.join(CA_EXPIRY_FILE),
        serde_json::json!({"generation": CA_GENERATION, "expires": expires})
            .to_string()
            .as_bytes(),
    )?;
    Ok(())
}

/// Whether the set in `dir` is of the current profile and not about to expire.
fn current(dir: &Path) -> bool {
    let Ok(text) = std::fs::read_to_string(dir.join(CA_EXPIRY_FILE)) else {
        return false;
    };
    let Ok(meta) = serde_json::from_str::<serde_json::Value>(&text) else {
        return false;
    };
    let renew_at = std::time::SystemTime::now() + RENEW_BEFORE;
    let expires = std::time::UNIX_EPOCH
        + std::time::Duration::from_secs(meta["expires"].as_u64().unwrap_or(0));
    meta["generation"].as_u64() == Some(CA_GENERATION) && expires > renew_at
}

/// A CA that can vouch for nothing but this machine: its name constraints permit only
/// `localhost`, 127.0.0.0/8 and ::1, so trusting it (as `SSL_CERT_FILE` does) cannot let
/// its key impersonate any other site.
fn new_ca(now: std::time::SystemTime) -> Result<(rcgen::Certificate, KeyPair), rcgen::Error> {
    use rcgen::{CidrSubnet, GeneralSubtree, NameConstraints};
    let ca_key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
    let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "akspolicy emulator CA");
    ca_params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let mut loopback6 = [0u8; 16];
    loopback6[15] = 1;
    ca_params.name_constraints = Some(NameConstraints {
        permitted_subtrees: vec![
            GeneralSubtree::DnsName("localhost".to_string()),
            GeneralSubtree::IpAddress(CidrSubnet::V4([127, 0, 0, 0], [255, 0, 0, 0])),
            GeneralSubtree::IpAddress(CidrSubnet::V6(loopback6, [0xff; 16])),
        ],
        excluded_subtrees: Vec::new(),
    });
    set_validity(&mut ca_params, now);
    let ca_cert = ca_params.self_signed(&ca_key)?;
    Ok((ca_cert, ca_key))
}

fn set_validity(params: &mut CertificateParams, now: std::time::SystemTime) {
    params.not_before = (now - BACKDATE).into();
    params.not_after = (now + CERT_LIFETIME).into();
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

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::client::danger::ServerCertVerifier;
    use rustls::pki_types::{ServerName, UnixTime};

    fn leaf_for(name: &str, ca: &rcgen::Certificate, ca_key: &KeyPair) -> rcgen::Certificate {
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let mut params = CertificateParams::new(vec![name.to_string()]).unwrap();
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.signed_by(&key, ca, ca_key).unwrap()
    }

    #[test]
    fn the_ca_vouches_only_for_this_machine() {
        let (ca, ca_key) = new_ca(std::time::SystemTime::now()).unwrap();
        let mut roots = rustls::RootCertStore::empty();
        roots.add(ca.der().clone()).unwrap();
        let verifier = rustls::client::WebPkiServerVerifier::builder_with_provider(
            Arc::new(roots),
            Arc::new(rustls::crypto::ring::default_provider()),
        )
        .build()
        .unwrap();
        let verify = |name: &str| {
            let leaf = leaf_for(name, &ca, &ca_key);
            verifier.verify_server_cert(
                leaf.der(),
                &[],
                &ServerName::try_from(name.to_string()).unwrap(),
                &[],
                UnixTime::now(),
            )
        };
        for name in ["localhost", "127.0.0.1", "127.9.9.9", "::1"] {
            assert!(verify(name).is_ok(), "{name}: {:?}", verify(name));
        }
        for name in [
            "management.azure.com",
            "login.microsoftonline.com",
            "10.0.0.1",
            "::2",
        ] {
            let err = verify(name).unwrap_err();
            assert!(
                format!("{err:?}").contains("NameConstraint"),
                "{name}: {err:?}"
            );
        }
    }

    #[test]
    fn certificates_live_a_year_and_old_sets_are_replaced() {
        let dir = tempfile::tempdir().unwrap();
        load_or_create(dir.path()).unwrap();
        assert!(current(dir.path()));
        let ca = read(&dir.path().join(CA_CERT_FILE)).unwrap();
        // A set from before name constraints (no expiry file) is regenerated.
        std::fs::remove_file(dir.path().join(CA_EXPIRY_FILE)).unwrap();
        assert!(!current(dir.path()));
        load_or_create(dir.path()).unwrap();
        assert_ne!(read(&dir.path().join(CA_CERT_FILE)).unwrap(), ca);
        // Reused while current.
        let ca = read(&dir.path().join(CA_CERT_FILE)).unwrap();
        load_or_create(dir.path()).unwrap();
        assert_eq!(read(&dir.path().join(CA_CERT_FILE)).unwrap(), ca);
        let meta: serde_json::Value =
            serde_json::from_str(&read(&dir.path().join(CA_EXPIRY_FILE)).unwrap()).unwrap();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let left = meta["expires"].as_u64().unwrap() - now;
        assert!(left <= CERT_LIFETIME.as_secs() && left > CERT_LIFETIME.as_secs() - 60);
    }
}
