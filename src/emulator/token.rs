//! Access tokens: ES256 JWTs signed with a key kept in the state directory, so tokens issued
//! before a restart still verify after it.

use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use ring::rand::SystemRandom;
use ring::signature::{
    EcdsaKeyPair, KeyPair, UnparsedPublicKey, ECDSA_P256_SHA256_FIXED,
    ECDSA_P256_SHA256_FIXED_SIGNING,
};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::error::EmulatorError;
use super::files::write_private;

const SIGNING_KEY_FILE: &str = "token-signing-key.p8";
/// Clock skew tolerated when checking `nbf`. Expiry gets none: issuer and checker share one
/// clock, and a leeway would make short `token_lifetime_s` profiles useless for testing refresh.
const LEEWAY_SECS: u64 = 60;

/// Audiences ARM accepts, compared without trailing slashes.
pub(crate) const ARM_AUDIENCES: [&str; 2] = [
    "https://management.azure.com",
    "https://management.core.windows.net",
];

/// True when `aud` names Azure Resource Manager (with or without trailing slash).
pub(crate) fn is_arm_audience(aud: &str) -> bool {
    let trimmed = aud.trim_end_matches('/');
    ARM_AUDIENCES
        .iter()
        .any(|a| a.eq_ignore_ascii_case(trimmed))
}

/// Claims the emulator puts into (and reads from) access tokens.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Claims {
    pub aud: String,
    pub iss: String,
    pub iat: u64,
    pub nbf: u64,
    pub exp: u64,
    pub tid: String,
    pub appid: String,
    pub azp: String,
    pub oid: String,
    pub sub: String,
    #[serde(default)]
    pub idtyp: Option<String>,
    #[serde(default)]
    pub ver: Option<String>,
    #[serde(default)]
    pub uti: Option<String>,
}

/// Why a presented token was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum TokenError {
    #[error("the access token is malformed")]
    Malformed,
    #[error("the access token signature is invalid")]
    BadSignature,
    #[error("the access token has expired")]
    Expired { exp: u64, now: u64 },
    #[error("the access token is not valid yet")]
    NotYetValid,
    #[error("the access token has the wrong audience")]
    WrongAudience { aud: String },
}

/// The token signing key.
pub(crate) struct TokenSigner {
    key: EcdsaKeyPair,
    kid: String,
    rng: SystemRandom,
}

pub(crate) fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl TokenSigner {
    /// Loads the key from `dir`, creating it on first start.
    pub(crate) fn load_or_create(dir: &Path) -> Result<Self, EmulatorError> {
        let rng = SystemRandom::new();
        let path = dir.join(SIGNING_KEY_FILE);
        let pkcs8 = if path.is_file() {
            std::fs::read(&path).map_err(|source| EmulatorError::Io {
                path: path.clone(),
                source,
            })?
        } else {
            let doc = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
                .map_err(|e| EmulatorError::SigningKey(e.to_string()))?;
            write_private(&path, doc.as_ref())?;
            doc.as_ref().to_vec()
        };
        let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &pkcs8, &rng)
            .map_err(|e| EmulatorError::SigningKey(format!("{}: {e}", path.display())))?;
        let digest = ring::digest::digest(&ring::digest::SHA256, key.public_key().as_ref());
        let kid = URL_SAFE_NO_PAD.encode(&digest.as_ref()[..16]);
        Ok(Self { key, kid, rng })
    }

    /// Signs `claims` into a compact JWS.
    pub(crate) fn sign(&self, claims: &Claims) -> Result<String, TokenError> {
        let header = json!({"typ": "JWT", "alg": "ES256", "kid": self.kid});
        let header = serde_json::to_vec(&header).map_err(|_| TokenError::Malformed)?;
        let payload = serde_json::to_vec(claims).map_err(|_| TokenError::Malformed)?;
        let signing_input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header),
            URL_SAFE_NO_PAD.encode(payload)
        );
        let sig = self
            .key
            .sign(&self.rng, signing_input.as_bytes())
            .map_err(|_| TokenError::BadSignature)?;
        Ok(format!(
            "{signing_input}.{}",
            URL_SAFE_NO_PAD.encode(sig.as_ref())
        ))
    }

    /// Checks signature, validity window and ARM audience; returns the claims.
    pub(crate) fn verify_arm(&self, token: &str) -> Result<Claims, TokenError> {
        let mut parts = token.split('.');
        let (Some(h), Some(p), Some(s), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(TokenError::Malformed);
        };
        let header: Value = URL_SAFE_NO_PAD
            .decode(h)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .ok_or(TokenError::Malformed)?;
        if header.get("alg").and_then(Value::as_str) != Some("ES256") {
            return Err(TokenError::BadSignature);
        }
        let sig = URL_SAFE_NO_PAD
            .decode(s)
            .map_err(|_| TokenError::Malformed)?;
        let public =
            UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, self.key.public_key().as_ref());
        public
            .verify(format!("{h}.{p}").as_bytes(), &sig)
            .map_err(|_| TokenError::BadSignature)?;
        let claims: Claims = URL_SAFE_NO_PAD
            .decode(p)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .ok_or(TokenError::Malformed)?;
        let now = now_secs();
        if claims.exp <= now {
            return Err(TokenError::Expired {
                exp: claims.exp,
                now,
            });
        }
        if claims.nbf > now + LEEWAY_SECS {
            return Err(TokenError::NotYetValid);
        }
        if !is_arm_audience(&claims.aud) {
            return Err(TokenError::WrongAudience { aud: claims.aud });
        }
        Ok(claims)
    }

    /// The JWKS document publishing the verification key.
    pub(crate) fn jwks(&self) -> Value {
        // An uncompressed P-256 point: 0x04 || x (32 bytes) || y (32 bytes).
        let point = self.key.public_key().as_ref();
        let (x, y) = if point.len() == 65 {
            (&point[1..33], &point[33..65])
        } else {
            (&point[..0], &point[..0])
        };
        json!({"keys": [{
            "kty": "EC",
            "use": "sig",
            "alg": "ES256",
            "crv": "P-256",
            "kid": self.kid,
            "x": URL_SAFE_NO_PAD.encode(x),
            "y": URL_SAFE_NO_PAD.encode(y),
        }]})
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(aud: &str, exp: u64) -> Claims {
        Claims {
            aud: aud.to_string(),
            iss: "https://x/t/v2.0".to_string(),
            iat: 0,
            nbf: 0,
            exp,
            tid: "t".to_string(),
            appid: "a".to_string(),
            azp: "a".to_string(),
            oid: "o".to_string(),
            sub: "o".to_string(),
            idtyp: None,
            ver: None,
            uti: None,
        }
    }

    #[test]
    fn sign_verify_and_reload() {
        let dir = tempfile::tempdir().expect("temp dir");
        let signer = TokenSigner::load_or_create(dir.path()).expect("key");
        let token = signer
            .sign(&claims(
                "https://management.core.windows.net/",
                now_secs() + 100,
            ))
            .expect("sign");
        assert!(signer.verify_arm(&token).is_ok());
        let reloaded = TokenSigner::load_or_create(dir.path()).expect("reload");
        assert!(reloaded.verify_arm(&token).is_ok());

        let expired = signer
            .sign(&claims("https://management.azure.com", 1000))
            .expect("sign");
        assert!(matches!(
            signer.verify_arm(&expired),
            Err(TokenError::Expired { .. })
        ));
        // Expiry is exact: a token whose `exp` is now is already refused.
        let just_expired = signer
            .sign(&claims("https://management.azure.com", now_secs()))
            .expect("sign");
        assert!(matches!(
            signer.verify_arm(&just_expired),
            Err(TokenError::Expired { .. })
        ));
        let graph = signer
            .sign(&claims("https://graph.microsoft.com", now_secs() + 100))
            .expect("sign");
        assert!(matches!(
            signer.verify_arm(&graph),
            Err(TokenError::WrongAudience { .. })
        ));
        let mut tampered = token.clone();
        tampered.insert(token.len() - 3, 'A');
        assert!(signer.verify_arm(&tampered).is_err());
        assert_eq!(signer.verify_arm("abc"), Err(TokenError::Malformed));
    }
}
