//! Endpoints that receive credentials or decide where they go (Resource Manager, Entra ID,
//! the cloud metadata host, the OIDC token request URL, the managed identity endpoint) must
//! be https. Plain http is allowed only where the traffic cannot leave this machine: loopback
//! (the emulator), and for the managed identity endpoint also link-local addresses, where
//! Azure itself serves it over http (IMDS at 169.254.169.254, App Service containers).

use super::settings::{ArmSettings, ENV_BINDINGS};

/// Which plain-http destinations an endpoint may have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlainHttp {
    /// Loopback addresses and `localhost` only.
    Loopback,
    /// Loopback plus link-local (169.254.0.0/16, fe80::/10): Azure's managed identity services.
    LoopbackOrLinkLocal,
}

/// An endpoint that would send credentials somewhere unsafe, or is not a URL at all.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{attribute} ({env}) {problem}")]
pub struct InsecureEndpoint {
    /// The provider attribute.
    pub attribute: &'static str,
    /// Its environment variable(s), for the message.
    pub env: String,
    /// What is wrong and how to fix it.
    pub problem: String,
}

/// True for `localhost`, 127.0.0.0/8 and ::1.
pub fn is_loopback(url: &url::Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(d)) => {
            let d = d.trim_end_matches('.');
            d.eq_ignore_ascii_case("localhost") || d.to_ascii_lowercase().ends_with(".localhost")
        }
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

fn is_link_local(url: &url::Url) -> bool {
    match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_link_local(),
        Some(url::Host::Ipv6(ip)) => (ip.segments()[0] & 0xffc0) == 0xfe80,
        _ => false,
    }
}

/// Checks one endpoint URL; the message says what is allowed.
pub fn check_url(value: &str, plain: PlainHttp) -> Result<url::Url, String> {
    let url = url::Url::parse(value.trim()).map_err(|e| format!("{value:?} is not a URL: {e}"))?;
    match url.scheme() {
        "https" => Ok(url),
        "http" => {
            let local = is_loopback(&url)
                || (plain == PlainHttp::LoopbackOrLinkLocal && is_link_local(&url));
            if local {
                Ok(url)
            } else {
                let allowed = match plain {
                    PlainHttp::Loopback => "loopback addresses (localhost, 127.0.0.0/8, ::1)",
                    PlainHttp::LoopbackOrLinkLocal => {
                        "loopback and link-local addresses (localhost, 127.0.0.0/8, ::1, \
                         169.254.0.0/16, fe80::/10)"
                    }
                };
                Err(format!(
                    "must use https:// because credentials travel to it; plain http:// is \
                     allowed only for {allowed}, got {value:?}"
                ))
            }
        }
        other => Err(format!(
            "must be an https:// URL, got scheme {other:?} in {value:?}"
        )),
    }
}

/// The URL `metadata_host` stands for: a bare host name means https.
pub fn metadata_base(host: &str) -> Result<url::Url, String> {
    let host = host.trim().trim_end_matches('/');
    let with_scheme = if host.contains("://") {
        host.to_string()
    } else {
        format!("https://{host}")
    };
    check_url(&with_scheme, PlainHttp::Loopback)
}

fn env_of(attribute: &str) -> String {
    ENV_BINDINGS
        .iter()
        .find(|b| b.attribute == attribute)
        .map(|b| b.env.join(" / "))
        .unwrap_or_default()
}

/// Every credential-bearing endpoint in `settings` that is unsafe, each naming its attribute.
pub fn insecure_endpoints(settings: &ArmSettings) -> Vec<InsecureEndpoint> {
    type Check = fn(&str) -> Result<url::Url, String>;
    let checks: [(&'static str, Option<&String>, Check); 5] = [
        (
            "metadata_host",
            settings.metadata_host.as_ref(),
            metadata_base,
        ),
        (
            "resource_manager_endpoint",
            settings.resource_manager_endpoint.as_ref(),
            |v| check_url(v, PlainHttp::Loopback),
        ),
        ("authority_host", settings.authority_host.as_ref(), |v| {
            check_url(v, PlainHttp::Loopback)
        }),
        (
            "oidc_request_url",
            settings.oidc_request_url.as_ref(),
            |v| check_url(v, PlainHttp::Loopback),
        ),
        ("msi_endpoint", settings.msi_endpoint.as_ref(), |v| {
            check_url(v, PlainHttp::LoopbackOrLinkLocal)
        }),
    ];
    checks
        .into_iter()
        .filter_map(|(attribute, value, check)| {
            let problem = check(value?).err()?;
            Some(InsecureEndpoint {
                attribute,
                env: env_of(attribute),
                problem,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn https_everywhere_http_only_to_this_machine() {
        for ok in [
            "https://management.azure.com/",
            "http://127.0.0.1:8443/",
            "http://127.5.0.1/",
            "http://localhost:1/",
            "http://LOCALHOST/",
            "http://[::1]:80/",
        ] {
            assert!(check_url(ok, PlainHttp::Loopback).is_ok(), "{ok}");
        }
        for bad in [
            "http://management.azure.com/",
            "http://10.0.0.1/",
            "http://169.254.169.254/metadata/identity/oauth2/token",
            "http://localhost.evil.example/",
            "http://127.0.0.1.nip.io/",
            "ftp://localhost/",
            "not a url",
        ] {
            let err = check_url(bad, PlainHttp::Loopback).unwrap_err();
            assert!(!err.is_empty(), "{bad}");
        }
        // Azure serves managed identity tokens over link-local http.
        assert!(check_url(
            "http://169.254.169.254/metadata/identity/oauth2/token",
            PlainHttp::LoopbackOrLinkLocal
        )
        .is_ok());
        assert!(check_url("http://[fe80::1]/", PlainHttp::LoopbackOrLinkLocal).is_ok());
        assert!(check_url("http://10.1.2.3/msi", PlainHttp::LoopbackOrLinkLocal).is_err());
    }

    #[test]
    fn metadata_host_without_scheme_means_https() {
        assert_eq!(
            metadata_base("management.azure.com").unwrap().as_str(),
            "https://management.azure.com/"
        );
        assert!(metadata_base("http://127.0.0.1:9/").is_ok());
        assert!(metadata_base("http://attacker.example").is_err());
    }

    #[test]
    fn every_unsafe_endpoint_is_named() {
        let settings = ArmSettings {
            metadata_host: Some("http://attacker.example".into()),
            oidc_request_url: Some("http://attacker.example/token".into()),
            msi_endpoint: Some("http://attacker.example/msi".into()),
            authority_host: Some("http://login.example/".into()),
            resource_manager_endpoint: Some("https://management.example/".into()),
            ..ArmSettings::default()
        };
        let found = insecure_endpoints(&settings);
        let names: Vec<_> = found.iter().map(|e| e.attribute).collect();
        assert_eq!(
            names,
            [
                "metadata_host",
                "authority_host",
                "oidc_request_url",
                "msi_endpoint"
            ]
        );
        let text = found[2].to_string();
        assert!(text.contains("ACTIONS_ID_TOKEN_REQUEST_URL"), "{text}");
        assert!(text.contains("https://"), "{text}");
    }
}
