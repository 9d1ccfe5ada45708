//! RPC-level tests of the plugin layer: the provider served in-process over a unix socket
//! (reattach mode) and driven with the generated tonic client, plus the real binary's
//! handshake and TLS lifecycle as a subprocess.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use akspolicy::framework::resource::{
    ApplyRequest, ApplyResponse, CallContext, ConfigureRequest, ConfigureResponse, DataSource,
    DeleteRequest, DeleteResponse, ReadRequest, ReadResponse, Resource,
};
use akspolicy::framework::{Attribute, Block, Provider, Schema, Type, Value};
use akspolicy::plugin::proto::goplugin::grpc_controller_client::GrpcControllerClient;
use akspolicy::plugin::proto::goplugin::Empty;
use akspolicy::plugin::proto::tfplugin5 as pb;
use akspolicy::plugin::proto::tfplugin5::provider_client::ProviderClient;
use akspolicy::plugin::wire::msgpack;
use akspolicy::plugin::{provider_service, serve_reattach, ReattachHandle};
use base64::Engine;
use hyper_util::rt::TokioIo;
use tonic::transport::{Channel, Endpoint, Uri};

const THING: &str = "akspolicy_thing";

struct Thing;

fn thing_type() -> Type {
    Type::object([
        ("id", Type::String),
        ("name", Type::String),
        ("params", Type::Dynamic),
    ])
}

#[async_trait::async_trait]
impl Resource for Thing {
    fn type_name(&self) -> &'static str {
        THING
    }
    fn schema(&self) -> Schema {
        Schema::new(
            Block::new()
                .attribute(Attribute::string("id").computed())
                .attribute(Attribute::string("name").required())
                .attribute(Attribute::new("params", Type::Dynamic).optional()),
        )
    }
    async fn create(&self, _ctx: &CallContext, req: ApplyRequest<'_>, resp: &mut ApplyResponse) {
        let mut state = req.planned.clone();
        state.set("id", Value::string("generated"));
        resp.state = Some(state);
    }
    async fn read(&self, ctx: &CallContext, req: ReadRequest<'_>, resp: &mut ReadResponse) {
        let state = req.state;
        if state.get("name").as_str() == Some("block") {
            // Simulates a slow Azure call that only Stop can interrupt.
            tokio::select! {
                _ = ctx.cancel.cancelled() => {}
                _ = tokio::time::sleep(Duration::from_secs(30)) => {}
            }
        }
        resp.state = Some(state.clone());
    }
    async fn update(&self, _ctx: &CallContext, req: ApplyRequest<'_>, resp: &mut ApplyResponse) {
        resp.state = Some(req.planned.clone());
    }
    async fn delete(
        &self,
        _ctx: &CallContext,
        _req: DeleteRequest<'_>,
        _resp: &mut DeleteResponse,
    ) {
    }
}

struct TestProvider;

#[async_trait::async_trait]
impl Provider for TestProvider {
    fn type_name(&self) -> &'static str {
        "akspolicy"
    }
    fn schema(&self) -> Schema {
        Schema::new(Block::new())
    }
    fn resources(&self) -> Vec<Arc<dyn Resource>> {
        vec![Arc::new(Thing)]
    }
    fn data_sources(&self) -> Vec<Arc<dyn DataSource>> {
        Vec::new()
    }
    async fn configure(&self, _req: ConfigureRequest, resp: &mut ConfigureResponse) {
        resp.provider_data = Some(Arc::new(()));
    }
}

async fn start() -> ReattachHandle {
    serve_reattach(
        provider_service(Arc::new(TestProvider)),
        "registry.terraform.io/akspolicy/akspolicy",
    )
    .await
    .expect("serve")
}

async fn unix_channel(path: &Path, endpoint: Endpoint) -> Channel {
    let path = path.to_path_buf();
    endpoint
        .connect_with_connector(tower::service_fn(move |_: Uri| {
            let path = path.clone();
            async move {
                let stream = tokio::net::UnixStream::connect(path).await?;
                Ok::<_, std::io::Error>(TokioIo::new(stream))
            }
        }))
        .await
        .expect("connect")
}

async fn client(handle: &ReattachHandle) -> ProviderClient<Channel> {
    let endpoint = Endpoint::from_static("http://localhost");
    ProviderClient::new(unix_channel(handle.socket_path(), endpoint).await)
}

fn mp(value: &Value, ty: &Type) -> Option<pb::DynamicValue> {
    Some(pb::DynamicValue {
        msgpack: msgpack::encode(value, ty).expect("encode"),
        json: Vec::new(),
    })
}

fn garbage() -> Option<pb::DynamicValue> {
    Some(pb::DynamicValue {
        msgpack: b"\xc1this is not msgpack".to_vec(),
        json: Vec::new(),
    })
}

fn has_error(diags: &[pb::Diagnostic], needle: &str) -> bool {
    diags.iter().any(|d| {
        d.severity == pb::diagnostic::Severity::Error as i32
            && (d.summary.contains(needle) || d.detail.contains(needle))
    })
}

fn thing(id: Value, name: &str) -> Value {
    let mut m = BTreeMap::new();
    m.insert("id".to_string(), id);
    m.insert("name".to_string(), Value::string(name));
    m.insert("params".to_string(), Value::Null);
    Value::Object(m)
}

#[tokio::test]
async fn schema_and_discovery_rpcs() {
    let handle = start().await;
    let mut c = client(&handle).await;

    let schema = c
        .get_schema(pb::get_provider_schema::Request {})
        .await
        .expect("GetSchema")
        .into_inner();
    assert!(schema.diagnostics.is_empty());
    assert!(schema.provider.and_then(|p| p.block).is_some());
    let thing = schema.resource_schemas.get(THING).expect("resource schema");
    let block = thing.block.as_ref().expect("block");
    let id = block
        .attributes
        .iter()
        .find(|a| a.name == "id")
        .expect("id");
    assert_eq!(id.r#type, br#""string""#);
    assert!(id.computed);

    let meta = c
        .get_metadata(pb::get_metadata::Request {})
        .await
        .expect("GetMetadata")
        .into_inner();
    assert!(meta.diagnostics.is_empty());
    assert_eq!(meta.resources.len(), 1);
    assert_eq!(meta.resources[0].type_name, THING);
    assert!(meta.server_capabilities.is_some());

    let ids = c
        .get_resource_identity_schemas(pb::get_resource_identity_schemas::Request {})
        .await
        .expect("GetResourceIdentitySchemas must not fail")
        .into_inner();
    assert!(ids.identity_schemas.is_empty() && ids.diagnostics.is_empty());

    let funcs = c
        .get_functions(pb::get_functions::Request {})
        .await
        .expect("GetFunctions")
        .into_inner();
    assert!(funcs.functions.is_empty() && funcs.diagnostics.is_empty());

    // go-plugin's health service, as Client.Ping uses it.
    let channel = unix_channel(
        handle.socket_path(),
        Endpoint::from_static("http://localhost"),
    )
    .await;
    let health = tonic_health::pb::health_client::HealthClient::new(channel)
        .check(tonic_health::pb::HealthCheckRequest {
            service: "plugin".into(),
        })
        .await
        .expect("health check")
        .into_inner();
    assert_eq!(
        health.status,
        tonic_health::pb::health_check_response::ServingStatus::Serving as i32
    );

    handle.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn unsupported_rpcs_answer_with_clear_diagnostics() {
    let handle = start().await;
    let mut c = client(&handle).await;

    let call = c
        .call_function(pb::call_function::Request {
            name: "f".into(),
            arguments: vec![],
        })
        .await
        .expect("CallFunction")
        .into_inner();
    let text = call.error.expect("function error").text;
    assert!(text.contains("does not support"), "{text}");

    let mv = c
        .move_resource_state(pb::move_resource_state::Request::default())
        .await
        .expect("MoveResourceState")
        .into_inner();
    assert!(has_error(&mv.diagnostics, "akspolicy does not support"));

    let eph = c
        .validate_ephemeral_resource_config(pb::validate_ephemeral_resource_config::Request {
            type_name: "akspolicy_x".into(),
            config: None,
        })
        .await
        .expect("ValidateEphemeralResourceConfig")
        .into_inner();
    assert!(has_error(&eph.diagnostics, "akspolicy does not support"));

    let open = c
        .open_ephemeral_resource(pb::open_ephemeral_resource::Request::default())
        .await
        .expect("OpenEphemeralResource")
        .into_inner();
    assert!(has_error(&open.diagnostics, "akspolicy does not support"));

    let renew = c
        .renew_ephemeral_resource(pb::renew_ephemeral_resource::Request::default())
        .await
        .expect("RenewEphemeralResource")
        .into_inner();
    assert!(has_error(&renew.diagnostics, "akspolicy does not support"));

    let close = c
        .close_ephemeral_resource(pb::close_ephemeral_resource::Request::default())
        .await
        .expect("CloseEphemeralResource")
        .into_inner();
    assert!(has_error(&close.diagnostics, "akspolicy does not support"));

    let ident = c
        .upgrade_resource_identity(pb::upgrade_resource_identity::Request::default())
        .await
        .expect("UpgradeResourceIdentity")
        .into_inner();
    assert!(has_error(&ident.diagnostics, "akspolicy does not support"));

    handle.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn malformed_requests_become_diagnostics_and_server_keeps_serving() {
    let handle = start().await;
    let mut c = client(&handle).await;

    let v = c
        .validate_resource_type_config(pb::validate_resource_type_config::Request {
            type_name: THING.into(),
            config: garbage(),
            client_capabilities: None,
        })
        .await
        .expect("Validate with garbage")
        .into_inner();
    assert!(has_error(&v.diagnostics, "malformed msgpack"), "{v:?}");

    let wrong_shape = c
        .plan_resource_change(pb::plan_resource_change::Request {
            type_name: THING.into(),
            prior_state: None,
            // A string where an object is required.
            proposed_new_state: mp(&Value::string("x"), &Type::String),
            config: garbage(),
            ..Default::default()
        })
        .await
        .expect("Plan with wrong type")
        .into_inner();
    assert!(has_error(&wrong_shape.diagnostics, "could not decode"));

    let no_type = c
        .read_resource(pb::read_resource::Request {
            type_name: String::new(),
            current_state: garbage(),
            ..Default::default()
        })
        .await
        .expect("Read without type name")
        .into_inner();
    assert!(!no_type.diagnostics.is_empty());

    let upgrade = c
        .upgrade_resource_state(pb::upgrade_resource_state::Request {
            type_name: THING.into(),
            version: 0,
            raw_state: Some(pb::RawState {
                json: b"{not json".to_vec(),
                flatmap: Default::default(),
            }),
        })
        .await
        .expect("Upgrade with bad JSON")
        .into_inner();
    assert!(has_error(&upgrade.diagnostics, "JSON"));

    // Still serving.
    c.get_schema(pb::get_provider_schema::Request {})
        .await
        .expect("GetSchema after malformed requests");
    handle.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn upgrade_and_plan_round_trip() {
    let handle = start().await;
    let mut c = client(&handle).await;
    let ty = thing_type();

    let up = c
        .upgrade_resource_state(pb::upgrade_resource_state::Request {
            type_name: THING.into(),
            version: 0,
            raw_state: Some(pb::RawState {
                json: br#"{ "id": "x", "dropped_attribute": 1 }"#.to_vec(),
                flatmap: Default::default(),
            }),
        })
        .await
        .expect("UpgradeResourceState")
        .into_inner();
    assert!(up.diagnostics.is_empty(), "{:?}", up.diagnostics);
    let state = msgpack::decode(&up.upgraded_state.expect("state").msgpack, &ty).expect("decode");
    let mut want = BTreeMap::new();
    want.insert("id".to_string(), Value::string("x"));
    want.insert("name".to_string(), Value::Null);
    want.insert("params".to_string(), Value::Null);
    assert_eq!(state, Value::Object(want));

    let proposed = thing(Value::Null, "a");
    let plan = c
        .plan_resource_change(pb::plan_resource_change::Request {
            type_name: THING.into(),
            prior_state: mp(&Value::Null, &ty),
            proposed_new_state: mp(&proposed, &ty),
            config: mp(&proposed, &ty),
            ..Default::default()
        })
        .await
        .expect("PlanResourceChange")
        .into_inner();
    assert!(plan.diagnostics.is_empty(), "{:?}", plan.diagnostics);
    let planned = plan.planned_state.expect("planned").msgpack;
    // {id: unknown, name: "a", params: null} exactly as cty writes it.
    let mut want = vec![0x83, 0xa2, b'i', b'd', 0xd4, 0x00, 0x00];
    want.extend_from_slice(&[0xa4, b'n', b'a', b'm', b'e', 0xa1, b'a']);
    want.extend_from_slice(&[0xa6, b'p', b'a', b'r', b'a', b'm', b's', 0xc0]);
    assert_eq!(planned, want);
    handle.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn stop_returns_promptly_while_a_call_is_in_flight() {
    let handle = start().await;
    let c = client(&handle).await;
    let ty = thing_type();

    let mut reader = c.clone();
    let state = mp(&thing(Value::string("1"), "block"), &ty);
    let in_flight = tokio::spawn(async move {
        reader
            .read_resource(pb::read_resource::Request {
                type_name: THING.into(),
                current_state: state,
                ..Default::default()
            })
            .await
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!in_flight.is_finished(), "read should still be blocked");

    let mut stopper = c.clone();
    let started = Instant::now();
    tokio::time::timeout(Duration::from_secs(2), stopper.stop(pb::stop::Request {}))
        .await
        .expect("Stop must not wait for the in-flight call")
        .expect("Stop");
    assert!(started.elapsed() < Duration::from_secs(2));

    let read = tokio::time::timeout(Duration::from_secs(5), in_flight)
        .await
        .expect("in-flight call observes the cancellation")
        .expect("join")
        .expect("ReadResource");
    drop(read);
    handle.shutdown().await.expect("shutdown");
}

#[test]
fn binary_without_cookie_explains_itself() {
    let out = Command::new(env!("CARGO_BIN_EXE_terraform-provider-akspolicy"))
        .env_remove("TF_PLUGIN_MAGIC_COOKIE")
        .stdin(Stdio::null())
        .output()
        .expect("run binary");
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("This binary is a plugin. These are not meant to be executed directly."),
        "{stderr}"
    );
    assert!(stderr.contains("--debug"), "{stderr}");
    assert!(out.stdout.is_empty(), "nothing on stdout");
}

#[test]
fn binary_rejects_a_host_without_protocol_5() {
    let out = Command::new(env!("CARGO_BIN_EXE_terraform-provider-akspolicy"))
        .env(
            "TF_PLUGIN_MAGIC_COOKIE",
            akspolicy::plugin::MAGIC_COOKIE_VALUE,
        )
        .env("PLUGIN_PROTOCOL_VERSIONS", "6")
        .stdin(Stdio::null())
        .output()
        .expect("run binary");
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("protocol 5"));
}

/// Terraform's AutoMTLS client identity as go-plugin makes it: a fresh self-signed ECDSA
/// P-521 certificate (rcgen cannot make P-521 with ring, so the DER is assembled here).
mod terraform_identity {
    use std::sync::Arc;

    use p521::ecdsa::signature::Signer as _;
    use p521::elliptic_curve::Generate;
    use rustls::pki_types::CertificateDer;
    use rustls::sign::{CertifiedKey, Signer, SigningKey};
    use rustls::{SignatureAlgorithm, SignatureScheme};

    fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
        let mut out = vec![tag];
        let len = content.len();
        if len < 0x80 {
            out.push(len as u8);
        } else if len <= 0xff {
            out.extend([0x81, len as u8]);
        } else {
            out.extend([0x82, (len >> 8) as u8, len as u8]);
        }
        out.extend_from_slice(content);
        out
    }

    fn seq(parts: &[Vec<u8>]) -> Vec<u8> {
        tlv(0x30, &parts.concat())
    }

    fn bit_string(bytes: &[u8]) -> Vec<u8> {
        tlv(0x03, &[&[0u8][..], bytes].concat())
    }

    const ECDSA_WITH_SHA512: &[u8] = &[0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x04];
    const EC_PUBLIC_KEY: &[u8] = &[0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];
    const SECP521R1: &[u8] = &[0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x23];
    const COMMON_NAME: &[u8] = &[0x06, 0x03, 0x55, 0x04, 0x03];
    const BASIC_CONSTRAINTS: &[u8] = &[0x06, 0x03, 0x55, 0x1d, 0x13];

    /// A P-521 key and its self-signed CA:TRUE certificate for `localhost`.
    pub struct Identity {
        pub key: Arc<p521::ecdsa::SigningKey>,
        pub cert: CertificateDer<'static>,
    }

    impl Identity {
        pub fn generate() -> Self {
            let key = p521::ecdsa::SigningKey::generate();
            let point = key.verifying_key().to_sec1_point(false);
            let name = seq(&[tlv(
                0x31,
                &seq(&[COMMON_NAME.to_vec(), tlv(0x0c, b"localhost")]),
            )]);
            let serial: [u8; 8] = rand_serial();
            let tbs = seq(&[
                tlv(0xa0, &tlv(0x02, &[2])),
                tlv(0x02, &[&[0x01][..], &serial].concat()),
                seq(&[ECDSA_WITH_SHA512.to_vec()]),
                name.clone(),
                seq(&[tlv(0x17, b"250101000000Z"), tlv(0x17, b"491231000000Z")]),
                name,
                seq(&[
                    seq(&[EC_PUBLIC_KEY.to_vec(), SECP521R1.to_vec()]),
                    bit_string(point.as_ref()),
                ]),
                tlv(
                    0xa3,
                    &seq(&[seq(&[
                        BASIC_CONSTRAINTS.to_vec(),
                        tlv(0x01, &[0xff]),
                        tlv(0x04, &seq(&[tlv(0x01, &[0xff])])),
                    ])]),
                ),
            ]);
            let signature: p521::ecdsa::Signature = key.sign(&tbs);
            let cert = seq(&[
                tbs,
                seq(&[ECDSA_WITH_SHA512.to_vec()]),
                bit_string(signature.to_der().as_bytes()),
            ]);
            Self {
                key: Arc::new(key),
                cert: CertificateDer::from(cert),
            }
        }

        pub fn pem(&self) -> String {
            super::der_to_pem(self.cert.as_ref())
        }

        /// This certificate, with the handshake signed by `key` (a forger uses a key of its own).
        pub fn certified_with(&self, key: &Arc<p521::ecdsa::SigningKey>) -> Arc<CertifiedKey> {
            Arc::new(CertifiedKey::new(
                vec![self.cert.clone()],
                Arc::new(P521Key(key.clone())),
            ))
        }
    }

    fn rand_serial() -> [u8; 8] {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1);
        nanos.to_be_bytes()
    }

    struct P521Key(Arc<p521::ecdsa::SigningKey>);

    impl std::fmt::Debug for P521Key {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("P521Key")
        }
    }

    impl SigningKey for P521Key {
        fn choose_scheme(&self, offered: &[SignatureScheme]) -> Option<Box<dyn Signer>> {
            offered
                .contains(&SignatureScheme::ECDSA_NISTP521_SHA512)
                .then(|| Box::new(P521Signer(self.0.clone())) as Box<dyn Signer>)
        }
        fn algorithm(&self) -> SignatureAlgorithm {
            SignatureAlgorithm::ECDSA
        }
    }

    struct P521Signer(Arc<p521::ecdsa::SigningKey>);

    impl std::fmt::Debug for P521Signer {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("P521Signer")
        }
    }

    impl Signer for P521Signer {
        fn sign(&self, message: &[u8]) -> Result<Vec<u8>, rustls::Error> {
            let signature: p521::ecdsa::Signature = self.0.sign(message);
            Ok(signature.to_der().as_bytes().to_vec())
        }
        fn scheme(&self) -> SignatureScheme {
            SignatureScheme::ECDSA_NISTP521_SHA512
        }
    }

    /// Presents one fixed certificate whatever the server asks for.
    #[derive(Debug)]
    pub struct Present(pub Arc<CertifiedKey>);

    impl rustls::client::ResolvesClientCert for Present {
        fn resolve(&self, _: &[&[u8]], _: &[SignatureScheme]) -> Option<Arc<CertifiedKey>> {
            Some(self.0.clone())
        }
        fn has_certs(&self) -> bool {
            true
        }
    }
}

fn der_to_pem(der: &[u8]) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut pem = String::from("-----BEGIN CERTIFICATE-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        pem.push_str(std::str::from_utf8(chunk).expect("base64 is ASCII"));
        pem.push('\n');
    }
    pem.push_str("-----END CERTIFICATE-----\n");
    pem
}

/// Calls GetSchema over TLS on the provider's socket, trusting the server certificate from
/// the handshake line and presenting `client` (or nothing).
async fn get_schema_over_tls(
    socket: &Path,
    server_cert: &[u8],
    client: Option<Arc<dyn rustls::client::ResolvesClientCert>>,
) -> Result<Channel, String> {
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(rustls::pki_types::CertificateDer::from(
            server_cert.to_vec(),
        ))
        .expect("server cert");
    let builder = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("versions")
    .with_root_certificates(roots);
    let mut config = match client {
        Some(resolver) => builder.with_client_cert_resolver(resolver),
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = vec![b"h2".to_vec()];
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let path = socket.to_path_buf();
    let channel = Endpoint::from_static("http://localhost")
        .connect_with_connector(tower::service_fn(move |_: Uri| {
            let path = path.clone();
            let connector = connector.clone();
            async move {
                let stream = tokio::net::UnixStream::connect(path).await?;
                let name = rustls::pki_types::ServerName::try_from("localhost")
                    .map_err(std::io::Error::other)?;
                let tls = connector.connect(name, stream).await?;
                Ok::<_, std::io::Error>(TokioIo::new(tls))
            }
        }))
        .await
        .map_err(|e| format!("connect: {e:?}"))?;
    ProviderClient::new(channel.clone())
        .get_schema(pb::get_provider_schema::Request {})
        .await
        .map_err(|e| format!("GetSchema: {e}"))?;
    Ok(channel)
}

/// Started as Terraform starts it (cookie, protocol list, PLUGIN_CLIENT_CERT with a P-521
/// certificate), the provider serves only the holder of that certificate's key: no
/// certificate, a stranger's certificate, and Terraform's certificate without its key are
/// all refused, Terraform's identity is served. The socket sits in a directory only this user
/// can enter, and both are gone after Shutdown.
#[tokio::test]
async fn binary_handshake_mutual_tls_and_shutdown() {
    use std::os::unix::fs::PermissionsExt;
    let terraform = terraform_identity::Identity::generate();
    let stranger = terraform_identity::Identity::generate();

    let started = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_terraform-provider-akspolicy"))
        .env(
            "TF_PLUGIN_MAGIC_COOKIE",
            akspolicy::plugin::MAGIC_COOKIE_VALUE,
        )
        .env("PLUGIN_PROTOCOL_VERSIONS", "6,5")
        .env("PLUGIN_CLIENT_CERT", terraform.pem())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn");
    let stdout = child.stdout.take().expect("stdout");
    let line = tokio::task::spawn_blocking(move || {
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).map(|_| line)
    })
    .await
    .expect("join")
    .expect("read handshake");
    let startup = started.elapsed();
    assert!(
        startup < Duration::from_secs(5),
        "handshake took {startup:?}"
    );

    let line = line.trim_end_matches('\n');
    let parts: Vec<&str> = line.split('|').collect();
    assert_eq!(parts.len(), 6, "{line}");
    assert_eq!(&parts[..3], ["1", "5", "unix"]);
    assert_eq!(parts[4], "grpc");
    let socket = PathBuf::from(parts[3]);
    assert!(socket.exists());
    let dir = socket.parent().expect("socket directory").to_path_buf();
    let mode = std::fs::metadata(&dir).expect("dir").permissions().mode();
    assert_eq!(mode & 0o777, 0o700, "socket directory mode {mode:o}");
    assert!(!parts[5].contains('='), "cert must be unpadded");
    let der = base64::engine::general_purpose::STANDARD_NO_PAD
        .decode(parts[5])
        .expect("RawStdEncoding base64");
    assert_eq!(der[0], 0x30, "DER certificate");

    let present = |c: Arc<rustls::sign::CertifiedKey>| {
        Some(Arc::new(terraform_identity::Present(c)) as Arc<dyn rustls::client::ResolvesClientCert>)
    };
    let refused = [
        ("no client certificate", None),
        (
            "a stranger's certificate",
            present(stranger.certified_with(&stranger.key)),
        ),
        (
            "Terraform's certificate signed with another key",
            present(terraform.certified_with(&stranger.key)),
        ),
    ];
    for (who, client) in refused {
        let result = get_schema_over_tls(&socket, &der, client).await;
        assert!(result.is_err(), "{who} must be refused");
    }

    let channel = get_schema_over_tls(
        &socket,
        &der,
        present(terraform.certified_with(&terraform.key)),
    )
    .await
    .expect("Terraform's identity is served");

    GrpcControllerClient::new(channel)
        .shutdown(Empty {})
        .await
        .expect("Shutdown");

    let deadline = Instant::now() + Duration::from_secs(3);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("provider did not exit within 3 s of Shutdown");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(status.success(), "{status}");
    assert!(!socket.exists(), "socket removed on exit");
    assert!(!dir.exists(), "socket directory removed on exit");
}

/// The Terraform CLI to drive, if any: `AKSPOLICY_TERRAFORM`, else the pinned one that
/// `make terraform` installs into `.tools/bin`.
fn terraform_binary() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("AKSPOLICY_TERRAFORM") {
        return Some(PathBuf::from(p));
    }
    let pinned = Path::new(env!("CARGO_MANIFEST_DIR")).join(".tools/bin/terraform");
    pinned.exists().then_some(pinned)
}

fn run_terraform(tf: &Path, dir: &Path, reattach: &str, args: &[&str]) -> (i32, String) {
    let out = Command::new(tf)
        .args(args)
        .current_dir(dir)
        .env("TF_REATTACH_PROVIDERS", reattach)
        .env("CHECKPOINT_DISABLE", "1")
        .env("TF_IN_AUTOMATION", "1")
        // An empty CLI config keeps the machine's own settings out of the test.
        .env("TF_CLI_CONFIG_FILE", dir.join("empty.tfrc"))
        .env_remove("TF_LOG")
        .stdin(Stdio::null())
        .output()
        .expect("run terraform");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text)
}

/// The real Terraform CLI against the in-process provider: the wire codec and the RPC
/// contract as Terraform itself checks them (create, empty re-plan, destroy).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_terraform_apply_plan_destroy_via_reattach() {
    let Some(tf) = terraform_binary() else {
        eprintln!(
            "note: no Terraform CLI (set AKSPOLICY_TERRAFORM or run `make terraform`); skipped"
        );
        return;
    };
    let handle = start().await;
    let reattach = handle.reattach_json();
    let dir = std::env::temp_dir().join(format!("akspolicy-rpc-tf-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("mkdir");
    std::fs::write(dir.join("empty.tfrc"), "").expect("write cli config");
    std::fs::write(
        dir.join("main.tf"),
        r#"
terraform {
  required_providers {
    akspolicy = { source = "akspolicy/akspolicy" }
  }
}
resource "akspolicy_thing" "t" {
  name   = "hello"
  params = { effect = "Deny", allowed = ["a", "b"], count = 3, nested = { on = true } }
}
output "id" { value = akspolicy_thing.t.id }
output "effect" { value = akspolicy_thing.t.params.effect }
"#,
    )
    .expect("write config");

    let dir2 = dir.clone();
    let result = tokio::task::spawn_blocking(move || {
        let steps: &[(&[&str], i32)] = &[
            (&["init", "-input=false", "-no-color"], 0),
            (&["apply", "-auto-approve", "-input=false", "-no-color"], 0),
            (
                &["plan", "-detailed-exitcode", "-input=false", "-no-color"],
                0,
            ),
            (&["output", "-raw", "id"], 0),
            (
                &["destroy", "-auto-approve", "-input=false", "-no-color"],
                0,
            ),
        ];
        let mut outputs = Vec::new();
        for (args, want) in steps {
            let (code, text) = run_terraform(&tf, &dir2, &reattach, args);
            assert_eq!(code, *want, "terraform {args:?}:\n{text}");
            outputs.push(text);
        }
        outputs
    })
    .await;
    let _ = std::fs::remove_dir_all(&dir);
    let outputs = result.expect("terraform steps");
    assert!(outputs[3].contains("generated"), "{}", outputs[3]);
    assert!(outputs[1].contains("effect = \"Deny\""), "{}", outputs[1]);
    assert!(outputs[1].contains("1 added"), "{}", outputs[1]);
    assert!(outputs[4].contains("1 destroyed"), "{}", outputs[4]);
    eprintln!("{}", outputs.join("\n----\n"));
    handle.shutdown().await.expect("shutdown");
}

fn send_signal(pid: u32, signal: &str) {
    let status = Command::new("kill")
        .args([signal, &pid.to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
}

/// Ctrl-C reaches plugins too; Terraform cancels through Stop, so SIGINT must not kill the
/// provider. SIGTERM must end it and remove its socket.
#[test]
fn binary_ignores_sigint_and_cleans_up_on_sigterm() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_terraform-provider-akspolicy"))
        .env(
            "TF_PLUGIN_MAGIC_COOKIE",
            akspolicy::plugin::MAGIC_COOKIE_VALUE,
        )
        .env("PLUGIN_PROTOCOL_VERSIONS", "5")
        .env_remove("PLUGIN_CLIENT_CERT")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn");
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("handshake");
    let parts: Vec<&str> = line.trim_end().split('|').collect();
    assert_eq!(parts.len(), 6, "{line}");
    assert_eq!(parts[5], "", "plaintext without PLUGIN_CLIENT_CERT");
    let socket = PathBuf::from(parts[3]);

    send_signal(child.id(), "-INT");
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        child.try_wait().expect("wait").is_none(),
        "SIGINT must be ignored"
    );
    assert!(socket.exists());

    send_signal(child.id(), "-TERM");
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        if child.try_wait().expect("wait").is_some() {
            break;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("provider did not exit on SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(!socket.exists(), "socket removed on SIGTERM");
}

#[tokio::test]
async fn provider_config_and_edge_requests() {
    let handle = start().await;
    let mut c = client(&handle).await;
    // An empty provider schema's config arrives as an empty map.
    let empty = Some(pb::DynamicValue {
        msgpack: vec![0x80],
        json: Vec::new(),
    });
    let prep = c
        .prepare_provider_config(pb::prepare_provider_config::Request {
            config: empty.clone(),
        })
        .await
        .expect("PrepareProviderConfig")
        .into_inner();
    assert!(prep.diagnostics.is_empty(), "{:?}", prep.diagnostics);
    let conf = c
        .configure(pb::configure::Request {
            terraform_version: "1.0.3".into(),
            config: empty,
            client_capabilities: None,
        })
        .await
        .expect("Configure")
        .into_inner();
    assert!(conf.diagnostics.is_empty(), "{:?}", conf.diagnostics);

    let flat = c
        .upgrade_resource_state(pb::upgrade_resource_state::Request {
            type_name: THING.into(),
            version: 0,
            raw_state: Some(pb::RawState {
                json: Vec::new(),
                flatmap: [("id".to_string(), "x".to_string())].into(),
            }),
        })
        .await
        .expect("UpgradeResourceState flatmap")
        .into_inner();
    assert!(has_error(&flat.diagnostics, "flatmap"));

    let import = c
        .import_resource_state(pb::import_resource_state::Request {
            type_name: "akspolicy_nope".into(),
            id: "x".into(),
            ..Default::default()
        })
        .await
        .expect("ImportResourceState")
        .into_inner();
    assert!(import.imported_resources.is_empty());
    assert!(!import.diagnostics.is_empty());

    // A failed decode during apply must hand the prior state back untouched.
    let ty = thing_type();
    let prior = mp(&thing(Value::string("1"), "a"), &ty);
    let apply = c
        .apply_resource_change(pb::apply_resource_change::Request {
            type_name: THING.into(),
            prior_state: prior.clone(),
            planned_state: garbage(),
            config: garbage(),
            ..Default::default()
        })
        .await
        .expect("ApplyResourceChange")
        .into_inner();
    assert!(has_error(&apply.diagnostics, "could not decode"));
    assert_eq!(apply.new_state, prior);

    // JSON-encoded DynamicValues are understood too.
    let json_cfg = c
        .validate_resource_type_config(pb::validate_resource_type_config::Request {
            type_name: THING.into(),
            config: Some(pb::DynamicValue {
                msgpack: Vec::new(),
                json: br#"{"id":null,"name":"a"}"#.to_vec(),
            }),
            client_capabilities: None,
        })
        .await
        .expect("Validate JSON")
        .into_inner();
    assert!(
        json_cfg.diagnostics.is_empty(),
        "{:?}",
        json_cfg.diagnostics
    );
    handle.shutdown().await.expect("shutdown");
}
