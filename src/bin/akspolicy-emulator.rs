//! `akspolicy-emulator`: runs the local ARM + Entra ID emulator (see `akspolicy::emulator`).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use std::time::Duration;

use akspolicy::emulator::{self, Config, ConnectionLimits};

/// Local HTTPS emulator of Azure Resource Manager and the Entra ID token endpoint.
#[derive(Parser)]
#[command(
    name = "akspolicy-emulator",
    version,
    about = "Local HTTPS emulator of Azure Resource Manager and the Entra ID token endpoint"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve until SIGTERM/SIGINT. Prints one JSON line with the connection details when ready.
    Serve(ServeArgs),
    /// Send manifests to a cluster's Gatekeeper admission webhook in the running emulator, like
    /// `kubectl apply -f`; exits 1 when any object is denied.
    Admit(AdmitArgs),
    /// Manage emulated AKS clusters without Terraform (for demos and scripts).
    Cluster(ClusterArgs),
}

#[derive(clap::Args)]
struct ServeArgs {
    /// Directory for the database, certificates, env.sh and emulator.json.
    #[arg(long)]
    state_dir: PathBuf,
    /// Address to listen on; port 0 picks a free port.
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// Azure/azure-policy checkout (or its built-in-policies folder) to serve built-ins from.
    #[arg(long)]
    builtins: Option<PathBuf>,
    /// GUID of the default subscription.
    #[arg(long)]
    subscription_id: Option<String>,
    /// How many subscriptions the tenant has (the default one first; env.sh lists them all in
    /// AKSPOLICY_EMULATOR_SUBSCRIPTION_IDS).
    #[arg(long, default_value_t = 1)]
    subscriptions: usize,
    /// GUID of the tenant.
    #[arg(long)]
    tenant_id: Option<String>,
    /// Client id of the service principal.
    #[arg(long)]
    client_id: Option<String>,
    /// Client secret of the service principal.
    #[arg(long, env = "AKSPOLICY_EMULATOR_CLIENT_SECRET", hide_env_values = true)]
    client_secret: Option<String>,
    /// JSON fault profile to start with (keys as for `POST /_emulator/faults`).
    #[arg(long)]
    faults: Option<PathBuf>,
    /// Gatekeeper ConstraintTemplates for PublicURL definitions, keyed by URL path (e.g.
    /// DIR/kubernetes/container-no-privilege/v2/template.yaml); default: the project's own.
    #[arg(long)]
    templates: Option<PathBuf>,
    /// Seconds a client has to send a request's headers, and again its body.
    #[arg(long, default_value_t = ConnectionLimits::default().read_timeout.as_secs(), value_parser = clap::value_parser!(u64).range(1..=3600))]
    read_timeout_s: u64,
    /// Seconds an idle connection stays open.
    #[arg(long, default_value_t = ConnectionLimits::default().idle_timeout.as_secs(), value_parser = clap::value_parser!(u64).range(1..=3600))]
    idle_timeout_s: u64,
    /// Connections served at once; more wait until one closes.
    #[arg(long, default_value_t = ConnectionLimits::default().max_connections as u64, value_parser = clap::value_parser!(u64).range(1..=65536))]
    max_connections: u64,
}

#[derive(clap::Args)]
struct AdmitArgs {
    /// State directory of the running emulator (its emulator.json says where it listens).
    #[arg(long)]
    state_dir: PathBuf,
    /// ARM id of the managed cluster.
    #[arg(long)]
    cluster: String,
    /// Manifest file (multi-document YAML or JSON); `-` reads stdin.
    #[arg(short = 'f', long = "filename")]
    file: PathBuf,
    /// `yaml`: print every admitted object as the cluster stores it (after mutation) on
    /// stdout, the per-object report going to stderr.
    #[arg(short = 'o', long = "output", value_enum)]
    output: Option<AdmitOutput>,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum AdmitOutput {
    Yaml,
}

#[derive(clap::Args)]
struct ClusterArgs {
    #[command(subcommand)]
    action: ClusterAction,
}

#[derive(Subcommand)]
enum ClusterAction {
    /// Create (or update) a resource group and an AKS cluster; prints the cluster id.
    Create {
        /// State directory of the running emulator.
        #[arg(long)]
        state_dir: PathBuf,
        #[arg(long)]
        resource_group: String,
        #[arg(long)]
        name: String,
        /// Subscription of the cluster; default: the emulator's default subscription.
        #[arg(long)]
        subscription: Option<String>,
        #[arg(long, default_value = "westeurope")]
        location: String,
        /// Enable the Azure Policy add-on.
        #[arg(long)]
        enable_policy_addon: bool,
    },
}

fn init_logging() {
    let filter = std::env::var("AKSPOLICY_EMULATOR_LOG")
        .or_else(|_| std::env::var("RUST_LOG"))
        .unwrap_or_else(|_| "info".to_string());
    env_logger::Builder::new()
        .parse_filters(&filter)
        .target(env_logger::Target::Stderr)
        .init();
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            log::error!("starting the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match cli.command {
        Command::Serve(args) => runtime.block_on(serve(args)),
        Command::Admit(args) => runtime.block_on(admit(args)),
        Command::Cluster(args) => runtime.block_on(cluster(args)),
    }
}

async fn serve(args: ServeArgs) -> ExitCode {
    let faults = match &args.faults {
        Some(path) => match emulator::FaultProfile::from_file(path) {
            Ok(p) => p,
            Err(e) => {
                log::error!("fault profile {e}");
                return ExitCode::FAILURE;
            }
        },
        None => emulator::FaultProfile::default(),
    };
    let config = Config {
        faults,
        state_dir: args.state_dir,
        listen: args.listen,
        builtins_dir: args.builtins,
        subscription_id: args.subscription_id,
        subscriptions: args.subscriptions,
        tenant_id: args.tenant_id,
        client_id: args.client_id,
        client_secret: args.client_secret,
        templates_dir: args.templates,
        limits: ConnectionLimits {
            read_timeout: Duration::from_secs(args.read_timeout_s),
            idle_timeout: Duration::from_secs(args.idle_timeout_s),
            max_connections: usize::try_from(args.max_connections).unwrap_or(usize::MAX),
        },
    };
    let running = match emulator::start(config).await {
        Ok(r) => r,
        Err(e) => {
            log::error!("{e}");
            return ExitCode::FAILURE;
        }
    };
    match serde_json::to_string(running.info()) {
        // The ready line is the binary's stdout protocol: harnesses read exactly this line.
        Ok(line) => println!("{line}"),
        Err(e) => {
            log::error!("encoding ready info: {e}");
            running.shutdown().await;
            return ExitCode::FAILURE;
        }
    }
    wait_for_signal().await;
    log::info!("shutting down");
    running.shutdown().await;
    ExitCode::SUCCESS
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(e) => {
                log::warn!("cannot listen for SIGTERM ({e}); only Ctrl-C stops the emulator");
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// One line per object, like `kubectl apply`: what was admitted, what was refused and why.
async fn admit(args: AdmitArgs) -> ExitCode {
    let text = if args.file.as_os_str() == "-" {
        let mut buf = String::new();
        if let Err(e) = std::io::Read::read_to_string(&mut std::io::stdin(), &mut buf) {
            log::error!("reading stdin: {e}");
            return ExitCode::from(2);
        }
        buf
    } else {
        match std::fs::read_to_string(&args.file) {
            Ok(t) => t,
            Err(e) => {
                log::error!("reading {}: {e}", args.file.display());
                return ExitCode::from(2);
            }
        }
    };
    let documents = match akspolicy::policy::constraint_template::parse_yaml_documents(&text) {
        Ok(d) => d,
        Err(e) => {
            log::error!("{}: {e}", args.file.display());
            return ExitCode::from(2);
        }
    };
    let client = match emulator::client::EmulatorClient::from_state_dir(&args.state_dir).await {
        Ok(c) => c,
        Err(e) => {
            log::error!("{e}");
            return ExitCode::from(2);
        }
    };
    let mut denied = false;
    for doc in &documents {
        let review = if doc["kind"] == "AdmissionReview" {
            doc.clone()
        } else {
            let uid = uuid::Uuid::new_v4().to_string();
            akspolicy::policy::constraint::admission_request_for(doc, &uid)
        };
        let request = &review["request"];
        let object = if request["object"].is_object() {
            &request["object"]
        } else {
            &request["oldObject"]
        };
        let what = format!(
            "{}/{}",
            object["kind"].as_str().unwrap_or("?").to_ascii_lowercase(),
            object["metadata"]["name"].as_str().unwrap_or("?")
        );
        let namespace = request["namespace"].as_str().unwrap_or("");
        let label = if namespace.is_empty() {
            what
        } else {
            format!("{what} (namespace {namespace})")
        };
        let answer = match client.admit(&args.cluster, &review).await {
            Ok(a) => a,
            Err(e) => {
                log::error!("{label}: {e}");
                return ExitCode::from(2);
            }
        };
        let response = &answer["response"];
        // This command's output is its purpose: a kubectl-like report on stdout, or on stderr
        // when stdout carries the admitted objects.
        let mut report = Vec::new();
        let allowed = response["allowed"].as_bool().unwrap_or(false);
        if allowed {
            report.push(format!("{label} admitted"));
        } else {
            denied = true;
            let message = response["status"]["message"].as_str().unwrap_or("");
            report.push(format!("{label} denied by the admission webhook:"));
            report.extend(message.lines().map(|l| format!("  {l}")));
        }
        for w in response["warnings"].as_array().into_iter().flatten() {
            report.push(format!("  Warning: {}", w.as_str().unwrap_or_default()));
        }
        match args.output {
            None => report.iter().for_each(|l| println!("{l}")),
            Some(AdmitOutput::Yaml) => {
                report.iter().for_each(|l| eprintln!("{l}"));
                let stored = request["object"].is_object() && allowed;
                if stored {
                    let ops = decode_patch(response);
                    let object = akspolicy::policy::mutation::apply_top_level_patch(
                        &request["object"],
                        &ops,
                    );
                    match serde_yaml_ng::to_string(&object) {
                        Ok(text) => print!("---\n{text}"),
                        Err(e) => log::error!("{label}: {e}"),
                    }
                }
            }
        }
        for e in answer["evaluationErrors"].as_array().into_iter().flatten() {
            println!(
                "  Evaluation error (Gatekeeper fails open, the request was not judged by it): {}",
                e.as_str().unwrap_or_default()
            );
        }
    }
    if denied {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

/// The JSONPatch of an AdmissionReview response (base64 of a JSON array), empty when none.
fn decode_patch(response: &serde_json::Value) -> Vec<serde_json::Value> {
    use base64::Engine as _;
    response["patch"]
        .as_str()
        .and_then(|p| base64::engine::general_purpose::STANDARD.decode(p).ok())
        .and_then(|bytes| serde_json::from_slice::<Vec<serde_json::Value>>(&bytes).ok())
        .unwrap_or_default()
}

async fn cluster(args: ClusterArgs) -> ExitCode {
    match args.action {
        ClusterAction::Create {
            state_dir,
            resource_group,
            name,
            subscription,
            location,
            enable_policy_addon,
        } => {
            let client = match emulator::client::EmulatorClient::from_state_dir(&state_dir).await {
                Ok(c) => c,
                Err(e) => {
                    log::error!("{e}");
                    return ExitCode::FAILURE;
                }
            };
            match client
                .create_cluster(
                    subscription.as_deref(),
                    &resource_group,
                    &name,
                    &location,
                    enable_policy_addon,
                )
                .await
            {
                Ok(id) => {
                    // The id is the command's result, for scripts to capture.
                    println!("{id}");
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    log::error!("{e}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}
