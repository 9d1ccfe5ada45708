//! Service principal with a certificate: the provider signs the RFC 7523 client assertion
//! itself (pure Rust, RS256 with the certificate's `x5t`) and azure_identity's
//! `ClientAssertionCredential` exchanges it. azure_identity's own `ClientCertificateCredential`
//! needs OpenSSL (its `client_certificate` feature) and reads PKCS#12 only; ours needs no C
//! library and reads PEM as well.

use super::*;

/// The certificate's key and thumbprint: signs an RS256 JWT client assertion.
struct Signer {
    client_id: String,
    key: ring::signature::RsaKeyPair,
    /// base64url(SHA-1(certificate DER)).
    x5t: String,
}

pub(super) const CERT_FLOW: &str = "client certificate";

impl AssertionCredential {
    /// Service principal with a certificate: a PEM bundle (certificate + RSA key) or a PFX
    /// archive.
    pub(super) fn client_certificate(
        authority: Authority,
        client_id: String,
        bytes: &[u8],
        password: Option<&str>,
    ) -> Result<Self, AuthError> {
        let signer = Signer::from_bytes(client_id.clone(), bytes, password)?;
        Ok(Self::new(CERT_FLOW, authority, client_id, Arc::new(signer)))
    }
}

impl Signer {
    /// Parses a PEM bundle holding the certificate and its RSA private key.
    fn from_pem(client_id: String, pem: &[u8]) -> Result<Self, AuthError> {
        use rustls_pki_types::pem::PemObject;
        use rustls_pki_types::{CertificateDer, PrivateKeyDer};
        let cfg = |m: String| AuthError::Config {
            flow: CERT_FLOW,
            message: m,
        };
        let cert = CertificateDer::pem_slice_iter(pem)
            .next()
            .ok_or_else(|| cfg("no CERTIFICATE block in the client certificate PEM".into()))?
            .map_err(|e| cfg(format!("bad CERTIFICATE block: {e}")))?;
        let key = PrivateKeyDer::from_pem_slice(pem).map_err(|e| {
            cfg(format!(
                "no usable private key in the client certificate PEM: {e}"
            ))
        })?;
        let key = match key {
            PrivateKeyDer::Pkcs8(k) => {
                ring::signature::RsaKeyPair::from_pkcs8(k.secret_pkcs8_der())
            }
            PrivateKeyDer::Pkcs1(k) => ring::signature::RsaKeyPair::from_der(k.secret_pkcs1_der()),
            _ => return Err(cfg("the private key must be RSA (PKCS#8 or PKCS#1)".into())),
        }
        .map_err(|e| cfg(format!("unusable RSA private key: {e}")))?;
        Ok(Self::new(client_id, cert.as_ref(), key))
    }

    /// Parses a PKCS#12 (PFX) archive: the first key with its leaf certificate.
    fn from_pfx(client_id: String, der: &[u8], password: &str) -> Result<Self, AuthError> {
        let cfg = |m: String| AuthError::Config {
            flow: CERT_FLOW,
            message: m,
        };
        let store = p12_keystore::KeyStore::from_pkcs12(
            der,
            password,
            p12_keystore::Pkcs12ImportPolicy::Relaxed,
        )
        .map_err(|e| {
            cfg(format!(
                "cannot open the PFX client certificate ({e}); check client_certificate_password \
                     (ARM_CLIENT_CERTIFICATE_PASSWORD)"
            ))
        })?;
        let (_, chain) = store
            .private_key_chain()
            .ok_or_else(|| cfg("the PFX holds no private key".into()))?;
        let cert = chain
            .certs()
            .first()
            .ok_or_else(|| cfg("the PFX holds no certificate for its private key".into()))?;
        let key = ring::signature::RsaKeyPair::from_pkcs8(chain.key().as_der())
            .map_err(|e| cfg(format!("the PFX private key is not a usable RSA key: {e}")))?;
        Ok(Self::new(client_id, cert.as_der(), key))
    }

    fn new(client_id: String, cert_der: &[u8], key: ring::signature::RsaKeyPair) -> Self {
        let digest = ring::digest::digest(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, cert_der);
        Signer {
            client_id,
            key,
            x5t: b64url(digest.as_ref()),
        }
    }

    /// Accepts a PEM bundle (certificate + RSA key) or a PFX archive.
    fn from_bytes(
        client_id: String,
        bytes: &[u8],
        password: Option<&str>,
    ) -> Result<Self, AuthError> {
        if bytes.windows(10).any(|w| w == b"-----BEGIN") {
            return Self::from_pem(client_id, bytes);
        }
        Self::from_pfx(client_id, bytes, password.unwrap_or(""))
    }

    fn assertion(&self, token_url: &str) -> Result<String, AuthError> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let header = serde_json::json!({"alg": "RS256", "typ": "JWT", "x5t": self.x5t});
        let claims = serde_json::json!({
            "aud": token_url,
            "iss": self.client_id,
            "sub": self.client_id,
            "jti": uuid::Uuid::new_v4().to_string(),
            "nbf": now,
            "iat": now,
            "exp": now + 600,
        });
        let signing_input = format!(
            "{}.{}",
            b64url(header.to_string().as_bytes()),
            b64url(claims.to_string().as_bytes())
        );
        let mut sig = vec![0u8; self.key.public().modulus_len()];
        self.key
            .sign(
                &ring::signature::RSA_PKCS1_SHA256,
                &ring::rand::SystemRandom::new(),
                signing_input.as_bytes(),
                &mut sig,
            )
            .map_err(|_| AuthError::Config {
                flow: CERT_FLOW,
                message: "signing the client assertion failed".into(),
            })?;
        Ok(format!("{signing_input}.{}", b64url(&sig)))
    }
}

fn b64url(b: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
}

impl AssertionSource for Signer {
    fn assertion<'a>(
        &'a self,
        token_url: &'a str,
    ) -> Pin<Box<dyn Future<Output = Result<String, AuthError>> + Send + 'a>> {
        Box::pin(async move { Signer::assertion(self, token_url) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::arm::credential::test_support::*;
    use crate::arm::testutil::{Response, TestServer};

    #[tokio::test]
    async fn client_certificate_signs_verifiable_assertion() {
        let pem = include_bytes!("../testdata/test-client-cert.pem");
        let server = TestServer::start(|req| {
            let f = form(&req.body);
            assert_eq!(f["client_assertion_type"], JWT_BEARER);
            Response::json(200, r#"{"expires_in":3600,"access_token":"cert-tok"}"#)
        })
        .await;
        let signer = Arc::new(Signer::from_bytes("app".into(), pem, None).unwrap());
        let cred =
            AssertionCredential::new(CERT_FLOW, authority(&server), "app".into(), signer.clone());
        let t = cred.get_token("s/.default").await.unwrap();
        assert_eq!(t.token, "cert-tok");
        let reqs = server.recorded();
        let assertion = form(&reqs[0].body)["client_assertion"].clone();
        let parts: Vec<&str> = assertion.split('.').collect();
        assert_eq!(parts.len(), 3);
        let dec = |s: &str| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(s)
                .unwrap()
        };
        let header: serde_json::Value = serde_json::from_slice(&dec(parts[0])).unwrap();
        assert_eq!(header["alg"], "RS256");
        assert_eq!(header["x5t"].as_str().unwrap().len(), 27);
        let claims: serde_json::Value = serde_json::from_slice(&dec(parts[1])).unwrap();
        assert_eq!(claims["iss"], "app");
        assert_eq!(
            claims["aud"],
            format!("{}tenant1/oauth2/v2.0/token", server.url())
        );
        let public = ring::signature::UnparsedPublicKey::new(
            &ring::signature::RSA_PKCS1_2048_8192_SHA256,
            signer.key.public().as_ref().to_vec(),
        );
        public
            .verify(
                format!("{}.{}", parts[0], parts[1]).as_bytes(),
                &dec(parts[2]),
            )
            .unwrap();
    }

    #[test]
    fn pfx_archives_load_with_password_and_match_pem() {
        let pem = Signer::from_bytes(
            "app".into(),
            include_bytes!("../testdata/test-client-cert.pem"),
            None,
        )
        .unwrap();
        for pfx in [
            &include_bytes!("../testdata/test-client-cert-aes.pfx")[..],
            &include_bytes!("../testdata/test-client-cert-legacy.pfx")[..],
        ] {
            let c = Signer::from_bytes("app".into(), pfx, Some("pfx-pass")).unwrap();
            assert_eq!(c.x5t, pem.x5t);
            assert_eq!(c.key.public().as_ref(), pem.key.public().as_ref());
            let e = Signer::from_bytes("app".into(), pfx, Some("wrong"))
                .err()
                .unwrap();
            assert!(
                e.to_string().contains("ARM_CLIENT_CERTIFICATE_PASSWORD"),
                "{e}"
            );
        }
    }
}
