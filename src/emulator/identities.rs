//! The tenant's further identities, one per way Entra ID lets a workload sign in besides a
//! client secret: an application with a certificate credential, an application with a
//! federated identity credential trusting the emulator's own OIDC issuer, and a user-assigned
//! managed identity served over the IMDS protocol. Ids and the PFX password are persisted in
//! the store; keys, certificate files and the issuer's token file live in the state directory.

use std::path::{Path, PathBuf};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use ring::signature::{RsaKeyPair, RSA_PKCS1_SHA256};
use rsa::pkcs8::{DecodePrivateKey, EncodePrivateKey};
use rsa::traits::PublicKeyParts;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::error::EmulatorError;
use super::files::write_private;
use super::state::new_guid;
use super::store::Store;
use super::token::now_secs;

const SETTING: &str = "identities";
const CERT_PEM_FILE: &str = "client-cert.pem";
const CERT_PFX_FILE: &str = "client-cert.pfx";
const ISSUER_KEY_FILE: &str = "oidc-issuer-key.p8";
const OIDC_TOKEN_FILE: &str = "oidc-token.jwt";
/// Entra ID accepts RSA keys of at least 2048 bits for certificate credentials.
const RSA_BITS: usize = 2048;
/// The audience Entra ID expects in federated tokens unless a credential says otherwise.
pub(crate) const FEDERATION_AUDIENCE: &str = "api://AzureADTokenExchange";
/// The subject the federated credential trusts: a Kubernetes service account, as AKS workload
/// identity presents it.
pub(crate) const FEDERATION_SUBJECT: &str = "system:serviceaccount:akspolicy:terraform";
/// Lifetime of the token file written at start. A kubelet refreshes projected tokens hourly;
/// the emulator writes one per start, so it must outlive a long test run.
const OIDC_TOKEN_LIFETIME_SECS: u64 = 24 * 3600;

/// What is persisted across restarts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct StoredIds {
    certificate_client_id: String,
    certificate_object_id: String,
    certificate_password: String,
    federated_client_id: String,
    federated_object_id: String,
    managed_identity_client_id: String,
    managed_identity_object_id: String,
}

/// An application registration whose only credential is a certificate.
pub(crate) struct CertificateApp {
    pub client_id: String,
    pub object_id: String,
    /// base64url SHA-1 of the certificate (the `x5t` header).
    pub x5t: String,
    /// base64url SHA-256 of the certificate (the `x5t#S256` header).
    pub x5t_s256: String,
    /// PKCS#1 RSAPublicKey of the certificate's key.
    pub public_key: Vec<u8>,
    pub pfx_path: PathBuf,
    pub pem_path: PathBuf,
    pub password: String,
}

/// An application registration with one federated identity credential.
pub(crate) struct FederatedApp {
    pub client_id: String,
    pub object_id: String,
    pub issuer: String,
    pub subject: String,
    pub audience: String,
}

/// A user-assigned managed identity attached to "this machine" (the IMDS endpoint).
pub(crate) struct ManagedIdentity {
    pub client_id: String,
    pub object_id: String,
}

/// The emulator's own OIDC issuer, which signs the federated tokens (RS256, as Kubernetes
/// service account issuers and GitHub do).
pub(crate) struct OidcIssuer {
    pub url: String,
    key: RsaKeyPair,
    kid: String,
    modulus: Vec<u8>,
    exponent: Vec<u8>,
    pub token_path: PathBuf,
}

pub(crate) struct Identities {
    pub certificate: CertificateApp,
    pub federated: FederatedApp,
    pub managed: ManagedIdentity,
    pub issuer: OidcIssuer,
}

fn key_error(what: &str, e: impl std::fmt::Display) -> EmulatorError {
    EmulatorError::SigningKey(format!("{what}: {e}"))
}

/// A new RSA key as PKCS#8 DER.
fn generate_rsa_pkcs8() -> Result<Vec<u8>, EmulatorError> {
    let key = rsa::RsaPrivateKey::new(&mut rsa::rand_core::OsRng, RSA_BITS)
        .map_err(|e| key_error("generating an RSA key", e))?;
    key.to_pkcs8_der()
        .map(|doc| doc.as_bytes().to_vec())
        .map_err(|e| key_error("encoding an RSA key", e))
}

fn read(path: &Path) -> Result<Vec<u8>, EmulatorError> {
    std::fs::read(path).map_err(|source| EmulatorError::Io {
        path: path.to_path_buf(),
        source,
    })
}

fn b64url(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

impl Identities {
    /// Loads (or creates on first start) every identity. `base_url` is the emulator's
    /// advertised origin; the issuer lives below it.
    pub(crate) fn load_or_create(
        store: &Store,
        dir: &Path,
        tenant_id: &str,
        base_url: &str,
    ) -> Result<Self, EmulatorError> {
        let ids = match store.setting::<StoredIds>(SETTING)? {
            Some(ids) => ids,
            None => {
                let ids = StoredIds {
                    certificate_client_id: new_guid(),
                    certificate_object_id: new_guid(),
                    certificate_password: new_guid(),
                    federated_client_id: new_guid(),
                    federated_object_id: new_guid(),
                    managed_identity_client_id: new_guid(),
                    managed_identity_object_id: new_guid(),
                };
                store.set_setting(SETTING, &ids)?;
                ids
            }
        };
        // Each key takes a few hundred milliseconds to generate on first start; every test
        // starts a fresh emulator, so make both at once.
        let (certificate, issuer) = std::thread::scope(|s| {
            let issuer = s.spawn(|| OidcIssuer::load_or_create(dir, base_url));
            let certificate = load_certificate(dir, &ids);
            let issuer = issuer
                .join()
                .unwrap_or_else(|_| Err(key_error("the OIDC issuer key", "generation panicked")));
            (certificate, issuer)
        });
        let (certificate, issuer) = (certificate?, issuer?);
        let federated = FederatedApp {
            client_id: ids.federated_client_id.clone(),
            object_id: ids.federated_object_id.clone(),
            issuer: issuer.url.clone(),
            subject: FEDERATION_SUBJECT.to_string(),
            audience: FEDERATION_AUDIENCE.to_string(),
        };
        // A fresh token per start: the issuer's origin (the port) may have changed.
        let now = now_secs();
        let token = issuer.mint(&FederatedClaims {
            iss: issuer.url.clone(),
            sub: federated.subject.clone(),
            aud: federated.audience.clone(),
            iat: now,
            nbf: now,
            exp: now + OIDC_TOKEN_LIFETIME_SECS,
            jti: new_guid(),
            tid: Some(tenant_id.to_string()),
        })?;
        write_private(&issuer.token_path, token.as_bytes())?;
        Ok(Identities {
            certificate,
            federated,
            managed: ManagedIdentity {
                client_id: ids.managed_identity_client_id,
                object_id: ids.managed_identity_object_id,
            },
            issuer,
        })
    }
}

/// The certificate application's key and certificate: `client-cert.pem` (certificate and
/// PKCS#8 key) is the source of truth, `client-cert.pfx` the same pair under the password.
fn load_certificate(dir: &Path, ids: &StoredIds) -> Result<CertificateApp, EmulatorError> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivatePkcs8KeyDer};
    let pem_path = dir.join(CERT_PEM_FILE);
    let pfx_path = dir.join(CERT_PFX_FILE);
    let (cert_der, key_der) = if pem_path.is_file() {
        let pem = read(&pem_path)?;
        let cert = CertificateDer::from_pem_slice(&pem)
            .map_err(|e| key_error(&pem_path.display().to_string(), e))?;
        let key = PrivatePkcs8KeyDer::from_pem_slice(&pem)
            .map_err(|e| key_error(&pem_path.display().to_string(), e))?;
        (cert.to_vec(), key.secret_pkcs8_der().to_vec())
    } else {
        let key_der = generate_rsa_pkcs8()?;
        let key_pair = rcgen::KeyPair::from_pkcs8_der_and_sign_algo(
            &PrivatePkcs8KeyDer::from(key_der.as_slice()),
            &rcgen::PKCS_RSA_SHA256,
        )
        .map_err(|e| key_error("loading the client certificate key", e))?;
        let mut params = rcgen::CertificateParams::default();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "akspolicy-emulator-client");
        let cert = params
            .self_signed(&key_pair)
            .map_err(|e| key_error("making the client certificate", e))?;
        let pem = format!("{}{}", cert.pem(), key_pair.serialize_pem());
        write_private(&pem_path, pem.as_bytes())?;
        (cert.der().to_vec(), key_der)
    };
    if !pfx_path.is_file() {
        let pfx = pfx_bytes(&cert_der, &key_der, &ids.certificate_password)?;
        write_private(&pfx_path, &pfx)?;
    }
    let key =
        RsaKeyPair::from_pkcs8(&key_der).map_err(|e| key_error("the client certificate key", e))?;
    let sha1 = ring::digest::digest(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, &cert_der);
    let sha256 = ring::digest::digest(&ring::digest::SHA256, &cert_der);
    Ok(CertificateApp {
        client_id: ids.certificate_client_id.clone(),
        object_id: ids.certificate_object_id.clone(),
        x5t: b64url(sha1.as_ref()),
        x5t_s256: b64url(sha256.as_ref()),
        public_key: ring::signature::KeyPair::public_key(&key).as_ref().to_vec(),
        pfx_path,
        pem_path,
        password: ids.certificate_password.clone(),
    })
}

/// A PKCS#12 archive of one key and its certificate (AES-256 and HMAC-SHA256, as current
/// OpenSSL and Windows write them).
fn pfx_bytes(cert_der: &[u8], key_der: &[u8], password: &str) -> Result<Vec<u8>, EmulatorError> {
    let cert = p12_keystore::Certificate::from_der(cert_der)
        .map_err(|e| key_error("the client certificate", e))?;
    let key = p12_keystore::PrivateKey::from_der(key_der)
        .map_err(|e| key_error("the client certificate key", e))?;
    let local_key_id = ring::digest::digest(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, cert_der);
    let mut store = p12_keystore::KeyStore::new();
    store.add_entry(
        "akspolicy-emulator-client",
        p12_keystore::KeyStoreEntry::PrivateKeyChain(p12_keystore::PrivateKeyChain::new(
            local_key_id.as_ref(),
            key,
            [cert],
        )),
    );
    store
        .writer(password)
        .write()
        .map_err(|e| key_error("writing the PFX", e))
}

/// Claims of a token the emulator's OIDC issuer signs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct FederatedClaims {
    pub iss: String,
    pub sub: String,
    pub aud: String,
    pub iat: u64,
    pub nbf: u64,
    pub exp: u64,
    pub jti: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tid: Option<String>,
}

impl OidcIssuer {
    fn load_or_create(dir: &Path, base_url: &str) -> Result<Self, EmulatorError> {
        let path = dir.join(ISSUER_KEY_FILE);
        let pkcs8 = if path.is_file() {
            read(&path)?
        } else {
            let der = generate_rsa_pkcs8()?;
            write_private(&path, &der)?;
            der
        };
        let key =
            RsaKeyPair::from_pkcs8(&pkcs8).map_err(|e| key_error("the OIDC issuer key", e))?;
        let public = rsa::RsaPrivateKey::from_pkcs8_der(&pkcs8)
            .map_err(|e| key_error("the OIDC issuer key", e))?;
        let modulus = public.n().to_bytes_be();
        let exponent = public.e().to_bytes_be();
        let digest = ring::digest::digest(
            &ring::digest::SHA256,
            ring::signature::KeyPair::public_key(&key).as_ref(),
        );
        Ok(OidcIssuer {
            url: format!("{}/oidc", base_url.trim_end_matches('/')),
            key,
            kid: b64url(&digest.as_ref()[..16]),
            modulus,
            exponent,
            token_path: dir.join(OIDC_TOKEN_FILE),
        })
    }

    /// Signs `claims` as an RS256 JWT.
    pub(crate) fn mint(&self, claims: &FederatedClaims) -> Result<String, EmulatorError> {
        let header = json!({"alg": "RS256", "typ": "JWT", "kid": self.kid});
        let payload = serde_json::to_vec(claims).map_err(|e| key_error("OIDC claims", e))?;
        let signing_input = format!(
            "{}.{}",
            b64url(header.to_string().as_bytes()),
            b64url(&payload)
        );
        let mut sig = vec![0u8; self.key.public().modulus_len()];
        self.key
            .sign(
                &RSA_PKCS1_SHA256,
                &ring::rand::SystemRandom::new(),
                signing_input.as_bytes(),
                &mut sig,
            )
            .map_err(|_| key_error("signing an OIDC token", "failed"))?;
        Ok(format!("{signing_input}.{}", b64url(&sig)))
    }

    /// The issuer's key id (`kid`).
    pub(crate) fn kid(&self) -> &str {
        &self.kid
    }

    /// PKCS#1 RSAPublicKey of the issuer's signing key.
    pub(crate) fn public_key(&self) -> &[u8] {
        ring::signature::KeyPair::public_key(&self.key).as_ref()
    }

    /// `{issuer}/.well-known/openid-configuration`.
    pub(crate) fn discovery(&self) -> Value {
        json!({
            "issuer": self.url,
            "jwks_uri": format!("{}/keys", self.url),
            "response_types_supported": ["id_token"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
        })
    }

    /// `{issuer}/keys`.
    pub(crate) fn jwks(&self) -> Value {
        json!({"keys": [{
            "kty": "RSA",
            "use": "sig",
            "alg": "RS256",
            "kid": self.kid,
            "n": b64url(&self.modulus),
            "e": b64url(&self.exponent),
        }]})
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn created_once_then_reloaded_with_the_same_keys_and_files() {
        let (dir, store) = Store::temporary();
        let first = Identities::load_or_create(&store, dir.path(), "t", "https://127.0.0.1:1")
            .expect("create");
        let again = Identities::load_or_create(&store, dir.path(), "t", "https://127.0.0.1:2")
            .expect("reload");
        assert_eq!(first.certificate.x5t, again.certificate.x5t);
        assert_eq!(first.certificate.client_id, again.certificate.client_id);
        assert_eq!(first.issuer.kid(), again.issuer.kid());
        // The issuer follows the origin; the token file is rewritten for it.
        assert_eq!(again.federated.issuer, "https://127.0.0.1:2/oidc");
        let token = std::fs::read_to_string(&again.issuer.token_path).expect("token file");
        let payload = token.split('.').nth(1).expect("payload");
        let claims: FederatedClaims =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).expect("b64")).expect("json");
        assert_eq!(claims.iss, again.federated.issuer);
        assert_eq!(claims.aud, FEDERATION_AUDIENCE);

        // The PFX opens with the password and holds the PEM's certificate.
        let pfx = std::fs::read(&first.certificate.pfx_path).expect("pfx");
        let ks = p12_keystore::KeyStore::from_pkcs12(
            &pfx,
            &first.certificate.password,
            p12_keystore::Pkcs12ImportPolicy::Strict,
        )
        .expect("open pfx");
        let (_, chain) = ks.private_key_chain().expect("key chain");
        let sha1 = ring::digest::digest(
            &ring::digest::SHA1_FOR_LEGACY_USE_ONLY,
            chain.certs()[0].as_der(),
        );
        assert_eq!(b64url(sha1.as_ref()), first.certificate.x5t);
        assert!(p12_keystore::KeyStore::from_pkcs12(
            &pfx,
            "wrong",
            p12_keystore::Pkcs12ImportPolicy::Strict
        )
        .is_err());
    }
}
