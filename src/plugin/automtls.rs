//! go-plugin AutoMTLS, server side: the provider serves TLS 1.3 and accepts exactly one client,
//! the one holding the certificate Terraform handed over in `PLUGIN_CLIENT_CERT`.
//!
//! Terraform's client certificate is a fresh self-signed ECDSA P-521 certificate. Path
//! validation is pointless for it (we pin the exact bytes), but possession of its private key
//! must be proven: rustls checks the `CertificateVerify` signature through our verifier, and
//! ring cannot verify P-521, so that one scheme is verified with RustCrypto's `p521`.

use std::sync::Arc;

use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::{
    alg_id, AlgorithmIdentifier, CertificateDer, InvalidSignature, PrivateKeyDer,
    SignatureVerificationAlgorithm, UnixTime,
};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{CertificateError, DigitallySignedStruct, DistinguishedName, SignatureScheme};

/// Why the AutoMTLS configuration could not be built.
#[derive(Debug, thiserror::Error)]
pub enum AutoMtlsError {
    /// `PLUGIN_CLIENT_CERT` did not hold exactly one PEM certificate.
    #[error(
        "PLUGIN_CLIENT_CERT must hold exactly one PEM certificate (Terraform sets it); found {found}"
    )]
    ClientCertificate {
        /// What was found instead.
        found: String,
    },
    /// rustls refused the server configuration.
    #[error("building the plugin TLS configuration failed: {0}")]
    Tls(#[from] rustls::Error),
}

/// Parses the PEM certificate Terraform passes in `PLUGIN_CLIENT_CERT`.
pub fn parse_client_certificate(pem: &str) -> Result<CertificateDer<'static>, AutoMtlsError> {
    let mut reader = pem.as_bytes();
    let mut certs = Vec::new();
    for item in rustls_pemfile::certs(&mut reader) {
        match item {
            Ok(cert) => certs.push(cert),
            Err(e) => {
                return Err(AutoMtlsError::ClientCertificate {
                    found: format!("unreadable PEM ({e})"),
                })
            }
        }
    }
    match certs.len() {
        1 => Ok(certs.remove(0)),
        n => Err(AutoMtlsError::ClientCertificate {
            found: format!("{n} certificates"),
        }),
    }
}

/// ECDSA over P-521 with SHA-512, as TLS 1.3's `ecdsa_secp521r1_sha512` and X.509's
/// `ecdsa-with-SHA512` on an `id-ecPublicKey`/`secp521r1` key define it.
#[derive(Debug)]
struct EcdsaP521Sha512;

impl SignatureVerificationAlgorithm for EcdsaP521Sha512 {
    fn verify_signature(
        &self,
        public_key: &[u8],
        message: &[u8],
        signature: &[u8],
    ) -> Result<(), InvalidSignature> {
        use p521::ecdsa::signature::Verifier;
        let key =
            p521::ecdsa::VerifyingKey::from_sec1_bytes(public_key).map_err(|_| InvalidSignature)?;
        let signature =
            p521::ecdsa::Signature::from_der(signature).map_err(|_| InvalidSignature)?;
        key.verify(message, &signature)
            .map_err(|_| InvalidSignature)
    }

    fn public_key_alg_id(&self) -> AlgorithmIdentifier {
        alg_id::ECDSA_P521
    }

    fn signature_alg_id(&self) -> AlgorithmIdentifier {
        alg_id::ECDSA_SHA512
    }
}

static ECDSA_P521_SHA512: EcdsaP521Sha512 = EcdsaP521Sha512;

/// The only handshake signature we accept: Terraform's key type.
static P521_ONLY: WebPkiSupportedAlgorithms = WebPkiSupportedAlgorithms {
    all: &[&ECDSA_P521_SHA512],
    mapping: &[(
        SignatureScheme::ECDSA_NISTP521_SHA512,
        &[&ECDSA_P521_SHA512],
    )],
};

/// Accepts exactly one client certificate (byte for byte) and checks that the client signed
/// the handshake with its key. Other key types go through the regular ring verifiers, so a
/// host that hands over, say, a P-256 certificate still works.
#[derive(Debug)]
pub struct PinnedClientCert {
    expected: CertificateDer<'static>,
    ring: WebPkiSupportedAlgorithms,
}

impl PinnedClientCert {
    /// A verifier for exactly this certificate.
    pub fn new(expected: CertificateDer<'static>) -> Self {
        Self {
            expected,
            ring: rustls::crypto::ring::default_provider().signature_verification_algorithms,
        }
    }
}

impl ClientCertVerifier for PinnedClientCert {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        // An empty list makes Go's client send its only certificate.
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        // The certificate's own validity dates do not matter: Terraform made it seconds ago
        // for this one process, and pinning the bytes is stronger than any chain check.
        if end_entity.as_ref() == self.expected.as_ref() {
            Ok(ClientCertVerified::assertion())
        } else {
            log::warn!(
                "plugin: refused a client certificate that is not the one Terraform handed over"
            );
            Err(rustls::Error::InvalidCertificate(
                CertificateError::ApplicationVerificationFailure,
            ))
        }
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        // The server config offers TLS 1.3 only.
        Err(rustls::Error::General(
            "the plugin server offers TLS 1.3 only".to_string(),
        ))
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let table = if dss.scheme == SignatureScheme::ECDSA_NISTP521_SHA512 {
            &P521_ONLY
        } else {
            &self.ring
        };
        rustls::crypto::verify_tls13_signature(message, cert, dss, table)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        let mut schemes = vec![SignatureScheme::ECDSA_NISTP521_SHA512];
        schemes.extend(self.ring.supported_schemes());
        schemes
    }
}

/// The provider's TLS server configuration: TLS 1.3, HTTP/2 (gRPC-Go insists on ALPN `h2`),
/// our fresh identity, and only Terraform's certificate accepted from clients.
pub fn server_config(
    client_cert: CertificateDer<'static>,
    server_cert: CertificateDer<'static>,
    server_key: PrivateKeyDer<'static>,
) -> Result<Arc<rustls::ServerConfig>, AutoMtlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_client_cert_verifier(Arc::new(PinnedClientCert::new(client_cert)))
        .with_single_cert(vec![server_cert], server_key)?;
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cert(names: &[&str]) -> CertificateDer<'static> {
        let key = rcgen::KeyPair::generate().unwrap();
        let names = names.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let cert = rcgen::CertificateParams::new(names)
            .unwrap()
            .self_signed(&key)
            .unwrap();
        cert.der().clone()
    }

    #[test]
    fn only_the_pinned_certificate_passes() {
        let terraform = cert(&["localhost"]);
        let stranger = cert(&["localhost"]);
        let verifier = PinnedClientCert::new(terraform.clone());
        let now = UnixTime::now();
        assert!(verifier.verify_client_cert(&terraform, &[], now).is_ok());
        assert!(verifier.verify_client_cert(&stranger, &[], now).is_err());
        assert!(verifier.client_auth_mandatory());
        assert_eq!(
            verifier.supported_verify_schemes()[0],
            SignatureScheme::ECDSA_NISTP521_SHA512
        );
    }

    #[test]
    fn p521_signatures_verify_and_forgeries_do_not() {
        use p521::ecdsa::signature::Signer;
        use p521::elliptic_curve::Generate;
        let key = p521::ecdsa::SigningKey::generate();
        let public = key.verifying_key().to_sec1_point(false);
        let message = b"TLS 1.3, client CertificateVerify";
        let signature: p521::ecdsa::Signature = key.sign(message);
        let der = signature.to_der();
        assert!(ECDSA_P521_SHA512
            .verify_signature(public.as_ref(), message, der.as_bytes())
            .is_ok());
        assert!(ECDSA_P521_SHA512
            .verify_signature(public.as_ref(), b"another message", der.as_bytes())
            .is_err());
        assert!(ECDSA_P521_SHA512
            .verify_signature(public.as_ref(), message, b"\x30\x00")
            .is_err());
    }

    #[test]
    fn client_certificate_pem_must_hold_one_certificate() {
        assert!(parse_client_certificate("").is_err());
        assert!(parse_client_certificate("not pem").is_err());
        let key = rcgen::KeyPair::generate().unwrap();
        let pem = rcgen::CertificateParams::new(vec!["localhost".to_string()])
            .unwrap()
            .self_signed(&key)
            .unwrap()
            .pem();
        assert!(parse_client_certificate(&pem).is_ok());
        let two = format!("{pem}{pem}");
        let err = parse_client_certificate(&two).unwrap_err();
        assert!(err.to_string().contains("2 certificates"), "{err}");
    }
}
