//! Client assertions (RFC 7523) as Entra ID checks them: a certificate application's own
//! signed JWT (`iss` = `sub` = client id, `x5t` names the registered certificate), or a token
//! from an external issuer matched against a federated identity credential.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use ring::signature::{UnparsedPublicKey, RSA_PKCS1_2048_8192_SHA256, RSA_PSS_2048_8192_SHA256};
use serde_json::Value;

use super::identities::{CertificateApp, FederatedApp, OidcIssuer};

/// Clock skew Entra ID tolerates on `nbf` and `exp` of an assertion.
const SKEW_SECS: u64 = 300;

/// A compact JWS split into its parts.
pub(crate) struct Jwt {
    header: Value,
    claims: Value,
    signing_input: String,
    signature: Vec<u8>,
}

impl Jwt {
    pub(crate) fn parse(token: &str) -> Option<Jwt> {
        let mut parts = token.trim().split('.');
        let (Some(h), Some(p), Some(s), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return None;
        };
        let json = |part: &str| -> Option<Value> {
            let bytes = URL_SAFE_NO_PAD.decode(part).ok()?;
            serde_json::from_slice::<Value>(&bytes)
                .ok()
                .filter(Value::is_object)
        };
        Some(Jwt {
            header: json(h)?,
            claims: json(p)?,
            signing_input: format!("{h}.{p}"),
            signature: URL_SAFE_NO_PAD.decode(s).ok()?,
        })
    }

    fn header_str(&self, name: &str) -> Option<&str> {
        self.header.get(name).and_then(Value::as_str)
    }

    pub(crate) fn claim_str(&self, name: &str) -> Option<&str> {
        self.claims.get(name).and_then(Value::as_str)
    }

    fn claim_u64(&self, name: &str) -> Option<u64> {
        self.claims.get(name).and_then(Value::as_u64)
    }

    /// `aud` as a list (a string or an array of strings).
    fn audiences(&self) -> Vec<&str> {
        match self.claims.get("aud") {
            Some(Value::String(s)) => vec![s.as_str()],
            Some(Value::Array(items)) => items.iter().filter_map(Value::as_str).collect(),
            _ => Vec::new(),
        }
    }

    /// Verifies an RS256 or PS256 signature with a PKCS#1 RSAPublicKey.
    fn verify_rsa(&self, public_key: &[u8]) -> Result<(), Rejection> {
        let alg = self.header_str("alg").unwrap_or("none");
        let algorithm = match alg {
            "RS256" => &RSA_PKCS1_2048_8192_SHA256,
            "PS256" => &RSA_PSS_2048_8192_SHA256,
            other => return Err(Rejection::UnsupportedAlgorithm(other.to_string())),
        };
        UnparsedPublicKey::new(algorithm, public_key)
            .verify(self.signing_input.as_bytes(), &self.signature)
            .map_err(|_| Rejection::BadSignature)
    }

    fn check_lifetime(&self, now: u64) -> Result<(), Rejection> {
        let exp = self.claim_u64("exp").ok_or(Rejection::Malformed)?;
        let nbf = self.claim_u64("nbf").or(self.claim_u64("iat")).unwrap_or(0);
        if exp.saturating_add(SKEW_SECS) <= now || nbf > now.saturating_add(SKEW_SECS) {
            return Err(Rejection::OutsideValidity { now, nbf, exp });
        }
        Ok(())
    }
}

/// Why an assertion was refused; `aad` turns each into Entra ID's error code and text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Rejection {
    Malformed,
    UnsupportedAlgorithm(String),
    /// No registered certificate has the presented thumbprint.
    UnknownCertificate {
        thumbprint: String,
    },
    BadSignature,
    /// `iss`/`sub` are not the client id the request names.
    WrongClient,
    WrongAudience {
        presented: String,
        expected: String,
    },
    OutsideValidity {
        now: u64,
        nbf: u64,
        exp: u64,
    },
    UnknownIssuer {
        issuer: String,
    },
    /// The issuer does not publish the key the token names.
    UnknownIssuerKey,
    UnknownSubject {
        subject: String,
    },
    UnknownAudience {
        audience: String,
    },
}

/// Checks a certificate application's assertion. `audiences` are the token endpoint URLs the
/// request could have been addressed to (v1, v2, and the v2 issuer, as Entra ID accepts).
pub(crate) fn verify_certificate(
    app: &CertificateApp,
    jwt: &Jwt,
    audiences: &[String],
    now: u64,
) -> Result<(), Rejection> {
    let presented = jwt
        .header_str("x5t#S256")
        .map(|t| (t, app.x5t_s256.as_str()))
        .or(jwt.header_str("x5t").map(|t| (t, app.x5t.as_str())));
    match presented {
        Some((thumbprint, registered)) if thumbprint == registered => {}
        other => {
            return Err(Rejection::UnknownCertificate {
                thumbprint: other.map(|(t, _)| t.to_string()).unwrap_or_default(),
            })
        }
    }
    jwt.verify_rsa(&app.public_key)?;
    if jwt.claim_str("iss") != Some(app.client_id.as_str())
        || jwt.claim_str("sub") != Some(app.client_id.as_str())
    {
        return Err(Rejection::WrongClient);
    }
    let normalise = |s: &str| s.trim_end_matches('/').to_ascii_lowercase();
    let accepted: Vec<String> = audiences.iter().map(|a| normalise(a)).collect();
    let aud = jwt.audiences();
    if !aud.iter().any(|a| accepted.contains(&normalise(a))) {
        return Err(Rejection::WrongAudience {
            presented: aud.join(" "),
            expected: audiences.first().cloned().unwrap_or_default(),
        });
    }
    jwt.check_lifetime(now)
}

/// Checks an external token against the federated identity credential of `app`.
pub(crate) fn verify_federated(
    app: &FederatedApp,
    issuer: &OidcIssuer,
    jwt: &Jwt,
    now: u64,
) -> Result<(), Rejection> {
    let iss = jwt.claim_str("iss").unwrap_or_default();
    if iss != app.issuer {
        return Err(Rejection::UnknownIssuer {
            issuer: iss.to_string(),
        });
    }
    // The only trusted issuer is the emulator's own; its JWKS has one key.
    if jwt.header_str("kid") != Some(issuer.kid()) {
        return Err(Rejection::UnknownIssuerKey);
    }
    jwt.verify_rsa(issuer.public_key())?;
    jwt.check_lifetime(now)?;
    let sub = jwt.claim_str("sub").unwrap_or_default();
    if sub != app.subject {
        return Err(Rejection::UnknownSubject {
            subject: sub.to_string(),
        });
    }
    let aud = jwt.audiences();
    if !aud.contains(&app.audience.as_str()) {
        return Err(Rejection::UnknownAudience {
            audience: aud.join(" "),
        });
    }
    Ok(())
}
