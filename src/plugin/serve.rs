//! go-plugin compatible server: handshake, AutoMTLS, side services, lifecycle.
//!
//! Mirrors what hashicorp/go-plugin's `Serve` does for a gRPC plugin, restricted to what
//! Terraform needs: a unix socket in a private directory under the temp dir, mutual TLS when
//! Terraform hands us its client certificate (see [`super::automtls`]), the handshake line on
//! stdout, and a controller that lets Terraform ask us to exit.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::net::{UnixListener, UnixStream};
use tokio_stream::wrappers::{ReceiverStream, UnixListenerStream};
use tokio_util::sync::CancellationToken;
use tonic::transport::Server;
use tonic::{Request, Response, Status, Streaming};

use super::automtls;
use super::proto::goplugin;
use super::proto::tfplugin5::provider_server::{Provider, ProviderServer};

/// Environment variable carrying the magic cookie.
pub const MAGIC_COOKIE_KEY: &str = "TF_PLUGIN_MAGIC_COOKIE";
/// The cookie value Terraform (and every HashiCorp plugin SDK) uses.
pub const MAGIC_COOKIE_VALUE: &str =
    "d602bf8f470bc67ca7faa0386276bbdd4330efaf76d1a219cb4d6991ca9872b2";
/// The application protocol major version we speak.
pub const PROTOCOL_VERSION: u32 = 5;
/// go-plugin's core protocol version.
const CORE_PROTOCOL_VERSION: u32 = 1;
/// Message size limit, as terraform-plugin-go uses; tonic's 4 MiB default is too small for
/// large states.
pub const MAX_MESSAGE_SIZE: usize = 256 << 20;
/// How long a graceful stop may take before we exit anyway (Terraform SIGKILLs after 2 s).
const GRACEFUL_STOP_LIMIT: Duration = Duration::from_millis(1000);
/// A client that has not finished the TLS handshake by then is dropped.
const TLS_HANDSHAKE_LIMIT: Duration = Duration::from_secs(10);

/// The message go-plugin prints when a plugin binary is run by hand.
pub const NOT_A_PLUGIN_MESSAGE: &str = "This binary is a plugin. These are not meant to be \
executed directly. Please execute the program that consumes these plugins, which will load \
any plugins automatically";

/// Errors that stop the plugin server from starting or running.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// Run without Terraform's magic cookie.
    #[error("{NOT_A_PLUGIN_MESSAGE}")]
    NotLaunchedByTerraform,
    /// Terraform did not offer protocol 5.
    #[error(
        "this provider speaks Terraform plugin protocol {PROTOCOL_VERSION} only, but the \
         host offered PLUGIN_PROTOCOL_VERSIONS={offered:?}; use Terraform 0.12 or later"
    )]
    UnsupportedProtocol {
        /// The raw value Terraform passed.
        offered: String,
    },
    /// Socket or stdout trouble.
    #[error("plugin I/O error: {0}")]
    Io(#[from] std::io::Error),
    /// `PLUGIN_CLIENT_CERT` or the TLS configuration is unusable.
    #[error(transparent)]
    AutoMtls(#[from] automtls::AutoMtlsError),
    /// Generating the TLS certificate failed.
    #[error("generating the plugin TLS certificate failed: {0}")]
    Certificate(#[from] rcgen::Error),
    /// The gRPC transport failed.
    #[error("gRPC transport error: {0}")]
    Transport(#[from] tonic::transport::Error),
}

/// Checks the magic cookie and negotiates the protocol version from explicit values.
pub fn check_environment(
    cookie: Option<&str>,
    protocol_versions: Option<&str>,
) -> Result<u32, ServeError> {
    if cookie != Some(MAGIC_COOKIE_VALUE) {
        return Err(ServeError::NotLaunchedByTerraform);
    }
    match protocol_versions {
        // go-plugin falls back to the plugin's own version when the host sends none.
        None => Ok(PROTOCOL_VERSION),
        Some(list) if list.trim().is_empty() => Ok(PROTOCOL_VERSION),
        Some(list) => {
            // Terraform builds this list from a Go map: order carries no meaning.
            let offered = list
                .split(',')
                .filter_map(|v| v.trim().parse::<u32>().ok())
                .any(|v| v == PROTOCOL_VERSION);
            if offered {
                Ok(PROTOCOL_VERSION)
            } else {
                Err(ServeError::UnsupportedProtocol {
                    offered: list.to_string(),
                })
            }
        }
    }
}

/// A freshly generated server identity for AutoMTLS.
struct TlsMaterial {
    cert_der: CertificateDer<'static>,
    key_der: PrivateKeyDer<'static>,
}

fn generate_tls() -> Result<TlsMaterial, rcgen::Error> {
    // P-256: ring (rustls' provider here) cannot sign with P-521, and Go accepts P-256.
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
    let mut params = rcgen::CertificateParams::new(vec!["localhost".to_string()])?;
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "localhost");
    params
        .distinguished_name
        .push(rcgen::DnType::OrganizationName, "akspolicy");
    let cert = params.self_signed(&key)?;
    Ok(TlsMaterial {
        cert_der: cert.der().clone(),
        key_der: PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
    })
}

/// Formats go-plugin's handshake line (without the newline).
pub fn handshake_line(socket: &Path, cert_der: Option<&[u8]>) -> String {
    let cert = cert_der
        .map(|der| base64::engine::general_purpose::STANDARD_NO_PAD.encode(der))
        .unwrap_or_default();
    format!(
        "{CORE_PROTOCOL_VERSION}|{PROTOCOL_VERSION}|unix|{}|grpc|{cert}",
        socket.display()
    )
}

/// The plugin's unix socket inside a fresh directory only this user can enter (0700), so no
/// other local user can even connect, whatever the socket's own mode. Both are removed on drop.
#[derive(Debug)]
struct PrivateSocket {
    dir: PathBuf,
    path: PathBuf,
}

impl PrivateSocket {
    fn create() -> std::io::Result<Self> {
        use std::os::unix::fs::DirBuilderExt;
        use std::sync::atomic::{AtomicU32, Ordering};
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let dir = std::env::temp_dir().join(format!(
            "akspolicy-plugin-{}-{n}-{nanos:x}",
            std::process::id()
        ));
        // mkdir fails on anything already there (a planted directory or symlink included), so
        // the directory we use is the one we made, with the mode we asked for.
        std::fs::DirBuilder::new().mode(0o700).create(&dir)?;
        let path = dir.join("plugin.sock");
        Ok(Self { dir, path })
    }

    fn bind(&self) -> std::io::Result<UnixListener> {
        UnixListener::bind(&self.path)
    }
}

impl Drop for PrivateSocket {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
        let _ = std::fs::remove_dir(&self.dir);
    }
}

/// go-plugin's controller: `Shutdown` asks the whole plugin process to stop.
struct Controller {
    shutdown: CancellationToken,
}

#[tonic::async_trait]
impl goplugin::grpc_controller_server::GrpcController for Controller {
    async fn shutdown(
        &self,
        _request: Request<goplugin::Empty>,
    ) -> Result<Response<goplugin::Empty>, Status> {
        log::debug!("plugin: shutdown requested by the host");
        self.shutdown.cancel();
        Ok(Response::new(goplugin::Empty {}))
    }
}

type BoxStream<T> = Pin<Box<dyn tokio_stream::Stream<Item = Result<T, Status>> + Send>>;

/// Our stdout/stderr are not captured, so the stdio stream just ends.
struct Stdio;

#[tonic::async_trait]
impl goplugin::grpc_stdio_server::GrpcStdio for Stdio {
    type StreamStdioStream = BoxStream<goplugin::StdioData>;

    async fn stream_stdio(
        &self,
        _request: Request<()>,
    ) -> Result<Response<Self::StreamStdioStream>, Status> {
        Ok(Response::new(Box::pin(tokio_stream::empty())))
    }
}

/// Providers never open broker sub-connections; the stream ends at once.
struct Broker;

#[tonic::async_trait]
impl goplugin::grpc_broker_server::GrpcBroker for Broker {
    type StartStreamStream = BoxStream<goplugin::ConnInfo>;

    async fn start_stream(
        &self,
        _request: Request<Streaming<goplugin::ConnInfo>>,
    ) -> Result<Response<Self::StartStreamStream>, Status> {
        Ok(Response::new(Box::pin(tokio_stream::empty())))
    }
}

/// Builds the router with every service a go-plugin host may call.
async fn router<P: Provider>(
    provider: P,
    shutdown: CancellationToken,
) -> tonic::transport::server::Router {
    let (health_reporter, health_service) = tonic_health::server::health_reporter();
    health_reporter
        .set_service_status("plugin", tonic_health::ServingStatus::Serving)
        .await;
    Server::builder()
        .add_service(
            ProviderServer::new(provider)
                .max_decoding_message_size(MAX_MESSAGE_SIZE)
                .max_encoding_message_size(MAX_MESSAGE_SIZE),
        )
        .add_service(goplugin::grpc_controller_server::GrpcControllerServer::new(
            Controller { shutdown },
        ))
        .add_service(goplugin::grpc_stdio_server::GrpcStdioServer::new(Stdio))
        .add_service(goplugin::grpc_broker_server::GrpcBrokerServer::new(Broker))
        .add_service(health_service)
}

/// Accepts unix connections and hands on only those that complete the TLS handshake, i.e.
/// that proved to hold Terraform's client key. Handshakes run concurrently so one stalled
/// client cannot hold up Terraform's own connection.
fn tls_incoming(
    listener: UnixListener,
    config: Arc<rustls::ServerConfig>,
    shutdown: CancellationToken,
) -> ReceiverStream<std::io::Result<tokio_rustls::server::TlsStream<UnixStream>>> {
    let (tx, rx) = tokio::sync::mpsc::channel(8);
    let acceptor = tokio_rustls::TlsAcceptor::from(config);
    tokio::spawn(async move {
        loop {
            let accepted = tokio::select! {
                _ = shutdown.cancelled() => return,
                accepted = listener.accept() => accepted,
            };
            let stream = match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    log::warn!("plugin: accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let acceptor = acceptor.clone();
            let tx = tx.clone();
            tokio::spawn(async move {
                match tokio::time::timeout(TLS_HANDSHAKE_LIMIT, acceptor.accept(stream)).await {
                    Ok(Ok(tls)) => {
                        let _ = tx.send(Ok(tls)).await;
                    }
                    Ok(Err(e)) => log::warn!("plugin: refused a connection: {e}"),
                    Err(_) => log::warn!("plugin: refused a connection: TLS handshake timed out"),
                }
            });
        }
    });
    ReceiverStream::new(rx)
}

/// Serves until `shutdown` fires, then allows a short graceful stop.
async fn run_until(
    router: tonic::transport::server::Router,
    listener: UnixListener,
    tls: Option<Arc<rustls::ServerConfig>>,
    shutdown: CancellationToken,
) -> Result<(), ServeError> {
    let signal = shutdown.clone();
    let stopped = async move { signal.cancelled().await };
    let server = async {
        match tls {
            Some(config) => {
                let incoming = tls_incoming(listener, config, shutdown.clone());
                router.serve_with_incoming_shutdown(incoming, stopped).await
            }
            None => {
                router
                    .serve_with_incoming_shutdown(UnixListenerStream::new(listener), stopped)
                    .await
            }
        }
    };
    tokio::select! {
        result = server => Ok(result?),
        // A host that keeps its connection open must not keep us alive past the limit.
        _ = async { shutdown.cancelled().await; tokio::time::sleep(GRACEFUL_STOP_LIMIT).await } => {
            log::debug!("plugin: graceful stop timed out; exiting anyway");
            Ok(())
        }
    }
}

/// Shuts down when Terraform dies without calling Shutdown (e.g. SIGKILL): an orphaned
/// provider would otherwise live on and hold Terraform's output pipes open.
fn watch_parent(shutdown: CancellationToken) {
    let parent = std::os::unix::process::parent_id();
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(std::time::Duration::from_millis(500)) => {}
            }
            if std::os::unix::process::parent_id() != parent {
                log::warn!("plugin: Terraform (pid {parent}) went away; shutting down");
                shutdown.cancel();
                return;
            }
        }
    });
}

/// Makes Ctrl-C harmless (Terraform cancels through `Stop`) and turns SIGTERM into a shutdown.
fn install_signal_handlers(shutdown: CancellationToken) -> Result<(), ServeError> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut interrupts = signal(SignalKind::interrupt())?;
    let mut terms = signal(SignalKind::terminate())?;
    tokio::spawn(async move {
        while interrupts.recv().await.is_some() {
            log::debug!("plugin: ignoring SIGINT; Terraform will send Stop");
        }
    });
    tokio::spawn(async move {
        if terms.recv().await.is_some() {
            log::debug!("plugin: SIGTERM received, shutting down");
            shutdown.cancel();
        }
    });
    Ok(())
}

/// Serves `provider` the way Terraform launches plugins (managed mode).
///
/// Checks the cookie and protocol versions from the environment, binds a unix socket in a
/// private directory, enables mutual TLS when `PLUGIN_CLIENT_CERT` is set (only the holder of
/// that certificate's key may connect), prints the handshake line and serves until the host
/// calls `GRPCController.Shutdown` or SIGTERM arrives. The socket is removed before returning.
pub async fn serve<P: Provider>(provider: P) -> Result<(), ServeError> {
    let cookie = std::env::var(MAGIC_COOKIE_KEY).ok();
    let versions = std::env::var("PLUGIN_PROTOCOL_VERSIONS").ok();
    check_environment(cookie.as_deref(), versions.as_deref())?;
    let client_cert = std::env::var("PLUGIN_CLIENT_CERT").unwrap_or_default();

    let shutdown = CancellationToken::new();
    install_signal_handlers(shutdown.clone())?;
    watch_parent(shutdown.clone());

    let (tls, server_cert) = if client_cert.trim().is_empty() {
        (None, None)
    } else {
        let client = automtls::parse_client_certificate(&client_cert)?;
        let identity = generate_tls()?;
        let cert = identity.cert_der.clone();
        let config = automtls::server_config(client, identity.cert_der, identity.key_der)?;
        (Some(config), Some(cert))
    };
    let socket = PrivateSocket::create()?;
    let listener = socket.bind()?;
    let router = router(provider, shutdown.clone()).await;

    // The host dials as soon as it reads this line, so the listener is already bound.
    let line = handshake_line(&socket.path, server_cert.as_deref());
    {
        let mut out = std::io::stdout().lock();
        writeln!(out, "{line}")?;
        out.flush()?;
    }
    log::debug!("plugin: serving on {}", socket.path.display());

    run_until(router, listener, tls, shutdown).await
}

/// A provider served in-process for Terraform's `TF_REATTACH_PROVIDERS` (debug / tests).
#[derive(Debug)]
pub struct ReattachHandle {
    provider_address: String,
    socket: PrivateSocket,
    shutdown: CancellationToken,
    task: Option<tokio::task::JoinHandle<Result<(), ServeError>>>,
}

impl ReattachHandle {
    /// The unix socket the provider listens on.
    pub fn socket_path(&self) -> &Path {
        &self.socket.path
    }

    /// The provider source address this handle was started for.
    pub fn provider_address(&self) -> &str {
        &self.provider_address
    }

    /// The value for `TF_REATTACH_PROVIDERS`.
    pub fn reattach_json(&self) -> String {
        reattach_json(
            &self.provider_address,
            std::process::id(),
            &self.socket.path.display().to_string(),
        )
    }

    /// A token that fires when the server is asked to stop (Shutdown RPC or [`Self::shutdown`]).
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// Stops the server, waits for it and removes the socket.
    pub async fn shutdown(mut self) -> Result<(), ServeError> {
        self.shutdown.cancel();
        let result = match self.task.take() {
            Some(task) => match task.await {
                Ok(r) => r,
                Err(join) => Err(ServeError::Io(std::io::Error::other(join.to_string()))),
            },
            None => Ok(()),
        };
        result
    }

    /// Waits until the server stops on its own (Shutdown RPC) or is told to.
    pub async fn wait(self) -> Result<(), ServeError> {
        self.shutdown.cancelled().await;
        self.shutdown().await
    }
}

impl Drop for ReattachHandle {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// Builds the `TF_REATTACH_PROVIDERS` JSON for one provider on a unix socket.
pub fn reattach_json(provider_address: &str, pid: u32, socket: &str) -> String {
    let mut map = serde_json::Map::new();
    map.insert(
        provider_address.to_string(),
        serde_json::json!({
            "Protocol": "grpc",
            "ProtocolVersion": PROTOCOL_VERSION,
            "Pid": pid,
            "Test": true,
            "Addr": { "Network": "unix", "String": socket },
        }),
    );
    serde_json::Value::Object(map).to_string()
}

/// Starts `provider` in-process on a fresh unix socket, plaintext (Terraform never uses TLS
/// for reattached providers), and returns at once. No cookie is needed.
pub async fn serve_reattach<P: Provider>(
    provider: P,
    provider_address: &str,
) -> Result<ReattachHandle, ServeError> {
    let shutdown = CancellationToken::new();
    let socket = PrivateSocket::create()?;
    let listener = socket.bind()?;
    let router = router(provider, shutdown.clone()).await;
    let task = tokio::spawn(run_until(router, listener, None, shutdown.clone()));
    Ok(ReattachHandle {
        provider_address: provider_address.to_string(),
        socket,
        shutdown,
        task: Some(task),
    })
}

/// `--debug` mode: serve in-process, print reattach instructions, run until SIGINT/SIGTERM.
pub async fn serve_debug<P: Provider>(
    provider: P,
    provider_address: &str,
) -> Result<(), ServeError> {
    use tokio::signal::unix::{signal, SignalKind};
    let handle = serve_reattach(provider, provider_address).await?;
    let json = handle.reattach_json();
    {
        // Debug mode is for a human at a terminal, so stdout is the right place here.
        let mut out = std::io::stdout().lock();
        writeln!(
            out,
            "Provider started in debug mode. To attach Terraform, set this in the shell \
             where you run terraform:\n\n\tTF_REATTACH_PROVIDERS='{json}'\n\n\
             Terraform will use this provider process instead of launching its own.\n\
             Press Ctrl-C (or send SIGTERM) to stop."
        )?;
        out.flush()?;
    }
    let mut interrupts = signal(SignalKind::interrupt())?;
    let mut terms = signal(SignalKind::terminate())?;
    let token = handle.shutdown_token();
    tokio::select! {
        _ = interrupts.recv() => {}
        _ = terms.recv() => {}
        _ = token.cancelled() => {}
    }
    handle.shutdown().await
}

/// Writes panics as `panic: <message>` so Terraform reports "plugin crashed" with details.
pub fn install_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        let payload = info.payload();
        let message = payload
            .downcast_ref::<&str>()
            .map(|s| (*s).to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown panic payload".to_string());
        let location = info
            .location()
            .map(|l| format!("{}:{}:{}", l.file(), l.line(), l.column()))
            .unwrap_or_else(|| "unknown location".to_string());
        let backtrace = std::backtrace::Backtrace::force_capture();
        let thread = std::thread::current();
        let mut err = std::io::stderr().lock();
        let _ = writeln!(
            err,
            "panic: {message}\n\nthread '{}' at {location}\n{backtrace}",
            thread.name().unwrap_or("<unnamed>")
        );
        let _ = err.flush();
    }));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookie_is_required() {
        assert!(matches!(
            check_environment(None, Some("5")),
            Err(ServeError::NotLaunchedByTerraform)
        ));
        assert!(matches!(
            check_environment(Some("nope"), Some("5")),
            Err(ServeError::NotLaunchedByTerraform)
        ));
    }

    #[test]
    fn protocol_list_is_an_unordered_set() {
        let c = Some(MAGIC_COOKIE_VALUE);
        assert_eq!(check_environment(c, Some("5,6")).unwrap(), 5);
        assert_eq!(check_environment(c, Some("6,5")).unwrap(), 5);
        assert_eq!(check_environment(c, Some(" 6 , 5 ")).unwrap(), 5);
        assert_eq!(check_environment(c, None).unwrap(), 5);
        let err = check_environment(c, Some("6")).unwrap_err();
        assert!(err.to_string().contains("protocol 5"), "{err}");
    }

    #[test]
    fn handshake_line_uses_unpadded_base64() {
        let line = handshake_line(Path::new("/tmp/x.sock"), Some(&[1, 2, 3, 4]));
        assert_eq!(line, "1|5|unix|/tmp/x.sock|grpc|AQIDBA");
        let plain = handshake_line(Path::new("/tmp/x.sock"), None);
        assert_eq!(plain, "1|5|unix|/tmp/x.sock|grpc|");
    }

    #[test]
    fn generated_cert_is_der_and_pem() {
        let tls = generate_tls().unwrap();
        assert_eq!(tls.cert_der[0], 0x30, "DER SEQUENCE");
        assert!(matches!(tls.key_der, PrivateKeyDer::Pkcs8(_)));
    }

    #[tokio::test]
    async fn socket_directory_is_private_and_removed() {
        use std::os::unix::fs::PermissionsExt;
        let socket = PrivateSocket::create().unwrap();
        let _listener = socket.bind().unwrap();
        let mode = std::fs::metadata(&socket.dir).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700, "{mode:o}");
        assert!(socket.path.starts_with(&socket.dir));
        let dir = socket.dir.clone();
        drop(socket);
        assert!(!dir.exists());
    }

    #[test]
    fn reattach_json_shape() {
        let json = reattach_json("registry.terraform.io/akspolicy/akspolicy", 42, "/tmp/s");
        let v: serde_json::Value = serde_json::from_str(&json).unwrap();
        let entry = &v["registry.terraform.io/akspolicy/akspolicy"];
        assert_eq!(entry["Protocol"], "grpc");
        assert_eq!(entry["ProtocolVersion"], 5);
        assert_eq!(entry["Pid"], 42);
        assert_eq!(entry["Test"], true);
        assert_eq!(entry["Addr"]["Network"], "unix");
        assert_eq!(entry["Addr"]["String"], "/tmp/s");
    }
}
