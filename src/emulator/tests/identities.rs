//! Every way to sign in: the certificate application's RFC 7523 assertion, the federated
//! application's token from the emulator's issuer, and the managed identity endpoint; each
//! refused credential gets Entra ID's (or IMDS's) error.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use reqwest::StatusCode;
use serde_json::{json, Value};

use super::{temporary_emu, Emu};
use crate::emulator::identities::FederatedClaims;
use crate::emulator::token::now_secs;

const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
const ARM_SCOPE: &str = "https://management.azure.com/.default";

/// The PKCS#8 key of a PEM bundle.
fn pem_key(pem: &[u8]) -> Vec<u8> {
    use rustls_pki_types::pem::PemObject;
    rustls_pki_types::PrivatePkcs8KeyDer::from_pem_slice(pem)
        .expect("PKCS#8 key")
        .secret_pkcs8_der()
        .to_vec()
}

fn pem_cert(pem: &[u8]) -> Vec<u8> {
    use rustls_pki_types::pem::PemObject;
    rustls_pki_types::CertificateDer::from_pem_slice(pem)
        .expect("certificate")
        .to_vec()
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

fn sha1_b64(der: &[u8]) -> String {
    b64(ring::digest::digest(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, der).as_ref())
}

/// An RS256 JWT signed with `pkcs8`.
fn sign(pkcs8: &[u8], header: &Value, claims: &Value) -> String {
    let key = ring::signature::RsaKeyPair::from_pkcs8(pkcs8).expect("RSA key");
    let input = format!(
        "{}.{}",
        b64(header.to_string().as_bytes()),
        b64(claims.to_string().as_bytes())
    );
    let mut sig = vec![0u8; key.public().modulus_len()];
    key.sign(
        &ring::signature::RSA_PKCS1_SHA256,
        &ring::rand::SystemRandom::new(),
        input.as_bytes(),
        &mut sig,
    )
    .expect("sign");
    format!("{input}.{}", b64(&sig))
}

impl Emu {
    fn token_url(&self) -> String {
        format!(
            "{}/{}/oauth2/v2.0/token",
            self.base,
            self.running.info().tenant_id
        )
    }

    async fn assertion_grant(&self, client_id: &str, assertion: &str) -> (StatusCode, Value) {
        self.token_response(
            &[
                ("grant_type", "client_credentials"),
                ("client_id", client_id),
                ("client_assertion_type", JWT_BEARER),
                ("client_assertion", assertion),
                ("scope", ARM_SCOPE),
            ],
            false,
        )
        .await
    }
}

fn aadsts(body: &Value) -> String {
    let code = body["error_codes"][0].as_u64().unwrap_or(0);
    format!("{} AADSTS{code}", body["error"].as_str().unwrap_or(""))
}

#[tokio::test]
async fn certificate_assertion_is_verified_like_entra_id() {
    let emu = temporary_emu().await;
    let info = emu.running.info().clone();
    let pem = std::fs::read(&info.certificate_pem).expect("PEM");
    let (key, cert) = (pem_key(&pem), pem_cert(&pem));
    let client = info.certificate_client_id.as_str();
    let now = now_secs();
    let claims = |aud: &str, exp: u64| json!({"aud": aud, "iss": client, "sub": client, "jti": "j", "nbf": now, "iat": now, "exp": exp});
    let header = json!({"alg": "RS256", "typ": "JWT", "x5t": sha1_b64(&cert)});

    let good = sign(&key, &header, &claims(&emu.token_url(), now + 600));
    let (status, body) = emu.assertion_grant(client, &good).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let token = body["access_token"].as_str().expect("token");
    assert_eq!(emu.arm_accepts(token).await, client);

    // The SHA-256 thumbprint header is accepted as well.
    let s256 = json!({"alg": "RS256", "typ": "JWT", "x5t#S256":
        b64(ring::digest::digest(&ring::digest::SHA256, &cert).as_ref())});
    let (status, body) = emu
        .assertion_grant(
            client,
            &sign(&key, &s256, &claims(&emu.token_url(), now + 600)),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");

    // Another key under the registered certificate's thumbprint: the signature fails; a
    // certificate the application never registered is refused as well.
    let foreign_pem = include_bytes!("../../arm/testdata/test-client-cert.pem");
    let foreign_key = pem_key(foreign_pem);
    let foreign_header =
        json!({"alg": "RS256", "typ": "JWT", "x5t": sha1_b64(&pem_cert(foreign_pem))});
    let valid = claims(&emu.token_url(), now + 600);
    for (header, says) in [
        (&header, "signature validation"),
        (&foreign_header, "not registered"),
    ] {
        let forged = sign(&foreign_key, header, &valid);
        let (status, body) = emu.assertion_grant(client, &forged).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_eq!(aadsts(&body), "invalid_client AADSTS700027", "{body}");
        let description = body["error_description"].as_str().unwrap_or_default();
        assert!(description.contains(says), "{body}");
    }

    // Expired (beyond the clock skew), meant for another token endpoint, or for another app.
    let expired = sign(&key, &header, &claims(&emu.token_url(), now - 3600));
    assert_eq!(
        aadsts(&emu.assertion_grant(client, &expired).await.1),
        "invalid_client AADSTS700024"
    );
    let elsewhere = sign(
        &key,
        &header,
        &claims(
            "https://login.microsoftonline.com/x/oauth2/v2.0/token",
            now + 600,
        ),
    );
    assert_eq!(
        aadsts(&emu.assertion_grant(client, &elsewhere).await.1),
        "invalid_client AADSTS50013"
    );
    let (status, body) = emu.assertion_grant(&info.client_id, &good).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(aadsts(&body), "invalid_client AADSTS700027", "{body}");

    // The certificate application has no secret; garbage is no JWT.
    let (status, body) = emu
        .token_response(
            &[
                ("grant_type", "client_credentials"),
                ("client_id", client),
                ("client_secret", &info.client_secret),
                ("scope", ARM_SCOPE),
            ],
            false,
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(aadsts(&body), "invalid_client AADSTS7000215");
    assert_eq!(
        aadsts(&emu.assertion_grant(client, "not-a-jwt").await.1),
        "invalid_request AADSTS50027"
    );
    emu.running.shutdown().await;
}

#[tokio::test]
async fn federated_token_is_checked_for_issuer_subject_audience_and_expiry() {
    let emu = temporary_emu().await;
    let info = emu.running.info().clone();
    let client = info.oidc_client_id.as_str();
    let file_token = std::fs::read_to_string(&info.oidc_token_file).expect("token file");
    let (status, body) = emu.assertion_grant(client, &file_token).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let token = body["access_token"].as_str().expect("token");
    assert_eq!(emu.arm_accepts(token).await, client);

    // The issuer publishes discovery and keys, as Entra ID needs to verify its tokens.
    let issuer = &emu.running.state.identities.issuer;
    let (status, _, discovery) = emu
        .get(
            None,
            &format!("{}/.well-known/openid-configuration", issuer.url),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(discovery["issuer"], issuer.url.as_str());
    let (status, _, jwks) = emu.get(None, "/oidc/keys").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(jwks["keys"][0]["kty"], "RSA");

    let now = now_secs();
    let federated = &emu.running.state.identities.federated;
    let claims = FederatedClaims {
        iss: federated.issuer.clone(),
        sub: federated.subject.clone(),
        aud: federated.audience.clone(),
        iat: now,
        nbf: now,
        exp: now + 600,
        jti: "j".into(),
        tid: None,
    };
    let emu = &emu;
    let refused = |c: FederatedClaims| {
        let jwt = issuer.mint(&c).expect("mint");
        async move { aadsts(&emu.assertion_grant(client, &jwt).await.1) }
    };
    let mut c = claims.clone();
    c.iss = "https://token.actions.githubusercontent.com".into();
    assert_eq!(refused(c).await, "invalid_client AADSTS700211");
    let mut c = claims.clone();
    c.sub = "repo:someone/else:ref:refs/heads/main".into();
    assert_eq!(refused(c).await, "invalid_client AADSTS700213");
    let mut c = claims.clone();
    c.aud = "api://SomethingElse".into();
    assert_eq!(refused(c).await, "invalid_client AADSTS700212");
    let mut c = claims.clone();
    (c.nbf, c.exp) = (now - 7200, now - 3600);
    assert_eq!(refused(c).await, "invalid_client AADSTS700024");

    // The right claims signed by a key the issuer does not publish.
    let foreign_key = pem_key(include_bytes!("../../arm/testdata/test-client-cert.pem"));
    let forged = sign(
        &foreign_key,
        &json!({"alg": "RS256", "typ": "JWT", "kid": issuer.kid()}),
        &serde_json::to_value(&claims).expect("claims"),
    );
    let (status, body) = emu.assertion_grant(client, &forged).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(aadsts(&body), "invalid_client AADSTS50013", "{body}");
}

#[tokio::test]
async fn managed_identity_endpoint_speaks_imds() {
    let emu = temporary_emu().await;
    let info = emu.running.info().clone();
    let get = |query: String, metadata: bool| {
        let mut req = emu.client.get(format!("{}{query}", info.msi_endpoint));
        if metadata {
            req = req.header("Metadata", "true");
        }
        async move {
            let resp = req.send().await.expect("IMDS request");
            let status = resp.status();
            (status, resp.json::<Value>().await.expect("JSON"))
        }
    };
    let resource = "?api-version=2018-02-01&resource=https%3A%2F%2Fmanagement.azure.com%2F";
    let (status, body) = get(resource.to_string(), true).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body["expires_on"].is_string() && body["expires_in"].is_string());
    let token = body["access_token"].as_str().expect("token");
    assert_eq!(emu.arm_accepts(token).await, info.msi_client_id);
    let (status, _) = get(format!("{resource}&client_id={}", info.msi_client_id), true).await;
    assert_eq!(status, StatusCode::OK);

    // (query, Metadata header sent, what IMDS says in which field)
    let graph = "?api-version=2018-02-01&resource=https%3A%2F%2Fgraph.microsoft.com%2F";
    for (query, metadata, says) in [
        (
            resource.to_string(),
            false,
            Some((
                "error_description",
                "Required metadata header not specified",
            )),
        ),
        (
            format!("{resource}&client_id={}", info.client_id),
            true,
            Some(("error_description", "Identity not found")),
        ),
        (graph.to_string(), true, Some(("error", "invalid_resource"))),
        // No api-version.
        (
            "?resource=https%3A%2F%2Fmanagement.azure.com%2F".into(),
            true,
            None,
        ),
    ] {
        let (status, body) = get(query.clone(), metadata).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query}: {body}");
        if let Some((field, message)) = says {
            assert_eq!(body[field], message, "{query}");
        }
    }
    emu.running.shutdown().await;
}

#[tokio::test]
async fn env_file_exports_every_identity() {
    let emu = temporary_emu().await;
    let env = std::fs::read_to_string(&emu.running.info().env_file).expect("env.sh");
    for name in [
        "AKSPOLICY_EMULATOR_CERT_CLIENT_ID",
        "AKSPOLICY_EMULATOR_CERT_PFX",
        "AKSPOLICY_EMULATOR_CERT_PEM",
        "AKSPOLICY_EMULATOR_CERT_PASSWORD",
        "AKSPOLICY_EMULATOR_OIDC_CLIENT_ID",
        "AKSPOLICY_EMULATOR_OIDC_TOKEN_FILE",
        "AKSPOLICY_EMULATOR_MSI_ENDPOINT",
        "AKSPOLICY_EMULATOR_MSI_CLIENT_ID",
    ] {
        assert!(
            env.contains(&format!("export {name}='")),
            "{name} missing:\n{env}"
        );
    }
    use std::os::unix::fs::PermissionsExt;
    let info = emu.running.info();
    for f in [
        &info.certificate_pfx,
        &info.certificate_pem,
        &info.oidc_token_file,
    ] {
        let mode = std::fs::metadata(f).expect("stat").permissions().mode();
        assert_eq!(mode & 0o077, 0, "{}", f.display());
    }
    emu.running.shutdown().await;
}
