//! The acceptance harness: a fresh emulator per test, the real Terraform CLI pointed at the
//! freshly built provider through `dev_overrides`, and helpers that run Terraform commands and
//! read their results the way a user would see them.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value as Json;

pub const PROVIDER_SOURCE: &str = "akspolicy/akspolicy";

/// The repository root (where Cargo.toml is).
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `../shared/specs` beside the repository, when the reference data is present.
pub fn shared_specs() -> Option<PathBuf> {
    let p = std::env::var_os("AKSPOLICY_SHARED_SPECS")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("../shared/specs"));
    p.is_dir().then_some(p)
}

/// A file the suite cannot do without (a spec, an example), with its path in the panic.
pub fn read_text(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

/// The Terraform binary: $AKSPOLICY_TERRAFORM, else the project's pinned install in
/// .tools/bin (see acceptance-tests/setup/install-terraform.sh), else `terraform` on PATH.
pub fn terraform_binary() -> PathBuf {
    if let Some(p) = std::env::var_os("AKSPOLICY_TERRAFORM") {
        return PathBuf::from(p);
    }
    let pinned = repo_root().join(".tools/bin/terraform");
    if pinned.is_file() {
        return pinned;
    }
    PathBuf::from("terraform")
}

/// The newest Terraform on the machine: $AKSPOLICY_TERRAFORM_LATEST, else `terraform` on PATH.
/// `make test` runs the acceptance suite once with the pinned 1.0.3 and once more with this one.
pub fn latest_terraform_binary() -> PathBuf {
    std::env::var_os("AKSPOLICY_TERRAFORM_LATEST")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("terraform"))
}

/// `terraform version -json` of a binary as (major, minor, patch); None when it cannot run.
pub fn terraform_version(binary: &Path) -> Option<(u32, u32, u32)> {
    let out = Command::new(binary)
        .args(["version", "-json"])
        .env("CHECKPOINT_DISABLE", "1")
        .stdin(Stdio::null())
        .output()
        .ok()?;
    let json: Json = serde_json::from_slice(&out.stdout).ok()?;
    let mut parts = json["terraform_version"]
        .as_str()?
        .split(['.', '-'])
        .map(|p| p.parse::<u32>().ok());
    Some((parts.next()??, parts.next()??, parts.next()??))
}

/// A Terraform of at least `min` (major, minor) for a test of a newer feature (import blocks,
/// functions, `terraform test`): the one the suite runs with when new enough, else the newest on
/// the machine. None (and a plain SKIPPED line naming the test) when the machine has none.
pub fn terraform_at_least(min: (u32, u32), test: &str) -> Option<PathBuf> {
    let candidates = [terraform_binary(), latest_terraform_binary()];
    for bin in candidates.iter() {
        if let Some((major, minor, _)) = terraform_version(bin) {
            if (major, minor) >= min {
                return Some(bin.clone());
            }
        }
    }
    println!(
        "SKIPPED: {test} needs Terraform >= {}.{}; none found (tried {}). \
         Set AKSPOLICY_TERRAFORM_LATEST to a newer terraform to run it.",
        min.0,
        min.1,
        candidates
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    );
    None
}

pub fn provider_binary() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_terraform-provider-akspolicy"))
}

pub fn emulator_binary() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_akspolicy-emulator"))
}

/// A running `akspolicy-emulator serve`, stopped when dropped.
pub struct Emulator {
    child: Child,
    pub state_dir: tempfile::TempDir,
    /// The JSON line the emulator printed when ready.
    pub info: Json,
    /// The variables its env.sh exports.
    pub env: BTreeMap<String, String>,
}

/// One row of the emulator's request metrics.
pub struct RequestCount {
    pub method: String,
    pub route: String,
    pub status: u64,
    pub count: u64,
}

impl Emulator {
    pub fn start() -> Emulator {
        Emulator::start_with(&[])
    }

    /// Starts with extra `serve` arguments (e.g. `--builtins DIR`).
    pub fn start_with(extra: &[&str]) -> Emulator {
        let state_dir = tempfile::tempdir().expect("temp dir for emulator state");
        Emulator::start_in(state_dir, extra)
    }

    /// An emulator serving Azure/azure-policy's built-ins from shared/specs (plus `extra`
    /// arguments); `None`, with a note that the test is skipped, without the reference data.
    pub fn start_with_shared_builtins(extra: &[&str]) -> Option<Emulator> {
        let Some(specs) = shared_specs() else {
            eprintln!("skipped: ../shared/specs is not present");
            return None;
        };
        let builtins = specs.join("azure-policy");
        let mut args = vec!["--builtins", builtins.to_str().expect("utf-8 path")];
        args.extend_from_slice(extra);
        Some(Emulator::start_with(&args))
    }

    pub fn start_in(state_dir: tempfile::TempDir, extra: &[&str]) -> Emulator {
        let mut child = Command::new(emulator_binary())
            .arg("serve")
            .arg("--state-dir")
            .arg(state_dir.path())
            .args(["--listen", "127.0.0.1:0"])
            .args(extra)
            .env("AKSPOLICY_EMULATOR_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start akspolicy-emulator");
        let stdout = child.stdout.take().expect("emulator stdout");
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("read emulator ready line");
        let info: Json = serde_json::from_str(line.trim())
            .unwrap_or_else(|e| panic!("emulator ready line is not JSON ({e}): {line:?}"));
        let env_file = info["env_file"]
            .as_str()
            .map(PathBuf::from)
            .unwrap_or_else(|| state_dir.path().join("env.sh"));
        let env = parse_env_file(&env_file);
        Emulator {
            child,
            state_dir,
            info,
            env,
        }
    }

    pub fn subscription_id(&self) -> String {
        self.env["ARM_SUBSCRIPTION_ID"].clone()
    }

    /// A bearer token for the emulator's service principal (client credentials, like any client).
    pub fn token(&self) -> String {
        let url = format!(
            "{}/{}/oauth2/v2.0/token",
            self.env["ARM_ACTIVE_DIRECTORY_AUTHORITY_HOST"].trim_end_matches('/'),
            self.env["ARM_TENANT_ID"]
        );
        let resp: Json = self
            .http()
            .post(url)
            .form(&[
                ("grant_type", "client_credentials"),
                ("client_id", self.env["ARM_CLIENT_ID"].as_str()),
                ("client_secret", self.env["ARM_CLIENT_SECRET"].as_str()),
                ("scope", "https://management.azure.com/.default"),
            ])
            .send()
            .expect("token request")
            .json()
            .expect("token JSON");
        resp["access_token"]
            .as_str()
            .expect("access_token")
            .to_string()
    }

    /// An ARM call with a token the caller fetched once (for many calls in a row).
    pub fn arm_with(
        &self,
        token: &str,
        method: &str,
        path_and_query: &str,
        body: Option<&Json>,
    ) -> (u16, Json) {
        let url = format!(
            "{}{}",
            self.env["ARM_RESOURCE_MANAGER_ENDPOINT"].trim_end_matches('/'),
            path_and_query
        );
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("HTTP method");
        let mut req = self.http().request(method, url).bearer_auth(token);
        if let Some(b) = body {
            req = req.json(b);
        }
        let resp = req.send().expect("ARM request");
        let status = resp.status().as_u16();
        let text = resp.text().unwrap_or_default();
        (status, serde_json::from_str(&text).unwrap_or(Json::Null))
    }

    fn http(&self) -> reqwest::blocking::Client {
        let ca = std::fs::read(self.state_dir.path().join("ca.pem")).expect("emulator ca.pem");
        reqwest::blocking::Client::builder()
            .add_root_certificate(reqwest::Certificate::from_pem(&ca).expect("CA PEM"))
            .build()
            .expect("HTTP client")
    }

    /// An ARM call made outside Terraform (to seed resources or to cause drift), as
    /// (status, JSON body or null). `path_and_query` must carry `api-version`.
    pub fn arm(&self, method: &str, path_and_query: &str, body: Option<&Json>) -> (u16, Json) {
        self.arm_with(&self.token(), method, path_and_query, body)
    }

    /// The emulator's request counts (`/_emulator/metrics`), one row per method, route template
    /// and status.
    pub fn request_counts(&self) -> Vec<RequestCount> {
        let (status, metrics) = self.arm("GET", "/_emulator/metrics", None);
        assert_eq!(status, 200, "metrics: {metrics}");
        metrics["requests"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|r| RequestCount {
                method: r["method"].as_str().unwrap_or_default().to_string(),
                route: r["route"].as_str().unwrap_or_default().to_string(),
                status: r["status"].as_u64().unwrap_or_default(),
                count: r["count"].as_u64().unwrap_or_default(),
            })
            .collect()
    }

    /// Requests so far with `method`, `status` (any when `None`) and a route template that
    /// `route` accepts.
    pub fn requests(&self, method: &str, status: Option<u64>, route: impl Fn(&str) -> bool) -> u64 {
        self.request_counts()
            .iter()
            .filter(|r| r.method == method && status.is_none_or(|s| r.status == s))
            .filter(|r| route(&r.route))
            .map(|r| r.count)
            .sum()
    }

    /// Stops the process but keeps the state directory (for restart tests).
    pub fn stop(mut self) -> tempfile::TempDir {
        terminate(&mut self.child);
        let dir = tempfile::tempdir().expect("placeholder dir");
        std::mem::replace(&mut self.state_dir, dir)
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        terminate(&mut self.child);
    }
}

fn terminate(child: &mut Child) {
    if let Ok(Some(_)) = child.try_wait() {
        return;
    }
    // SIGTERM first so the emulator closes its database cleanly.
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status();
    for _ in 0..50 {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// Reads `export NAME=value` lines (values optionally single- or double-quoted).
pub fn parse_env_file(path: &Path) -> BTreeMap<String, String> {
    let text =
        std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    text.lines()
        .filter_map(|l| l.trim().strip_prefix("export "))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| {
            let v = v.trim();
            let v = v
                .strip_prefix('\'')
                .and_then(|v| v.strip_suffix('\''))
                .or_else(|| v.strip_prefix('"').and_then(|v| v.strip_suffix('"')))
                .unwrap_or(v);
            (k.trim().to_string(), v.to_string())
        })
        .collect()
}

/// The result of one Terraform command.
pub struct TfRun {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl TfRun {
    pub fn from(out: Output) -> TfRun {
        TfRun {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    pub fn combined(&self) -> String {
        format!("{}\n{}", self.stdout, self.stderr)
    }

    pub fn assert_ok(&self, what: &str) -> &TfRun {
        assert_eq!(
            self.code, 0,
            "terraform {what} failed:\n--- stdout\n{}\n--- stderr\n{}",
            self.stdout, self.stderr
        );
        self
    }

    /// Asserts the command stopped on error diagnostics (exit 1) whose text holds every one of
    /// `needles`; the whole output, for the caller's further checks.
    pub fn assert_error_with(&self, needles: &[&str]) -> String {
        let text = self.combined();
        assert_eq!(self.code, 1, "{text}");
        for needle in needles {
            assert!(text.contains(needle), "{needle:?} missing from:\n{text}");
        }
        text
    }
}

/// A Terraform working directory wired to the built provider and an emulator.
pub struct Workspace {
    pub dir: tempfile::TempDir,
    cli_config: PathBuf,
    env: BTreeMap<String, String>,
    terraform: PathBuf,
}

impl Workspace {
    pub fn new(emulator: &Emulator) -> Workspace {
        Workspace::with_env(emulator.env.clone())
    }

    pub fn with_env(env: BTreeMap<String, String>) -> Workspace {
        let dir = tempfile::tempdir().expect("temp dir for terraform");
        let cli_config = dir.path().join(".terraformrc");
        let provider_dir = provider_binary()
            .parent()
            .expect("provider binary has a directory")
            .to_path_buf();
        std::fs::write(
            &cli_config,
            format!(
                "provider_installation {{\n  dev_overrides {{\n    \"{PROVIDER_SOURCE}\" = \"{}\"\n  }}\n  direct {{}}\n}}\n",
                provider_dir.display()
            ),
        )
        .expect("write CLI config");
        Workspace {
            dir,
            cli_config,
            env,
            terraform: terraform_binary(),
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Runs this workspace's commands with another Terraform (see `terraform_at_least`).
    pub fn use_terraform(&mut self, binary: PathBuf) {
        self.terraform = binary;
    }

    pub fn set_env(&mut self, key: &str, value: &str) {
        self.env.insert(key.to_string(), value.to_string());
    }

    /// Writes main.tf, with the required_providers block prepended.
    pub fn write_config(&self, body: &str) {
        let text = format!(
            "terraform {{\n  required_providers {{\n    akspolicy = {{ source = \"{PROVIDER_SOURCE}\" }}\n  }}\n}}\n\n{body}\n"
        );
        std::fs::write(self.dir.path().join("main.tf"), text).expect("write main.tf");
    }

    pub fn terraform(&self, args: &[&str]) -> TfRun {
        let mut cmd = self.command(args);
        TfRun::from(cmd.output().expect("run terraform"))
    }

    /// The `terraform` command `terraform()` runs, prepared but not started (for callers that
    /// spawn it: signals, timeouts, sampling the provider's memory).
    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(&self.terraform);
        cmd.args(args)
            .current_dir(self.dir.path())
            .stdin(Stdio::null())
            .env("TF_CLI_CONFIG_FILE", &self.cli_config)
            .env("CHECKPOINT_DISABLE", "1")
            .env("TF_IN_AUTOMATION", "1")
            .env_remove("TF_LOG")
            .env_remove("TF_LOG_PROVIDER");
        // Only the emulator's credentials may reach the provider, never the developer's.
        for (k, _) in std::env::vars() {
            if k.starts_with("ARM_") || k.starts_with("AZURE_") {
                cmd.env_remove(&k);
            }
        }
        cmd.envs(&self.env);
        cmd
    }

    pub fn validate(&self) -> TfRun {
        self.terraform(&["validate", "-no-color"])
    }

    pub fn plan(&self) -> TfRun {
        self.terraform(&["plan", "-input=false", "-no-color", "-detailed-exitcode"])
    }

    /// Plans and asserts that the plan has changes (exit code 2 of -detailed-exitcode) and that
    /// its output names each of `needles`; the plan.
    pub fn plan_with_changes(&self, needles: &[&str]) -> TfRun {
        let plan = self.plan();
        assert_eq!(plan.code, 2, "expected changes:\n{}", plan.combined());
        for needle in needles {
            assert!(
                plan.stdout.contains(needle),
                "{needle:?} not in the plan:\n{}",
                plan.stdout
            );
        }
        plan
    }

    pub fn apply(&self) -> TfRun {
        self.terraform(&["apply", "-input=false", "-no-color", "-auto-approve"])
    }

    pub fn destroy(&self) -> TfRun {
        self.terraform(&["destroy", "-input=false", "-no-color", "-auto-approve"])
    }

    /// Asserts that a plan after apply shows no changes (exit code 0 of -detailed-exitcode).
    pub fn assert_empty_plan(&self) {
        let run = self.plan();
        assert_eq!(
            run.code,
            0,
            "expected an empty plan (exit 0), got {}:\n{}",
            run.code,
            run.combined()
        );
    }

    /// A plan proposes no resource changes (outputs may still change, e.g. after `state rm`).
    pub fn assert_no_resource_changes(&self) {
        let plan = self.plan();
        assert!(
            !plan
                .stdout
                .contains("Terraform will perform the following actions"),
            "imported state does not plan empty:\n{}",
            plan.stdout
        );
    }

    /// The root module's resources in state (`terraform show -json`).
    pub fn state_resources(&self) -> Vec<Json> {
        let run = self.terraform(&["show", "-json", "-no-color"]);
        run.assert_ok("show -json");
        let show: Json = serde_json::from_str(&run.stdout).expect("show -json is JSON");
        show["values"]["root_module"]["resources"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// The attributes `address` has in state (null when it is not there).
    pub fn state_attributes(&self, address: &str) -> Json {
        self.state_resources()
            .into_iter()
            .find(|r| r["address"] == address)
            .map(|r| r["values"].clone())
            .unwrap_or(Json::Null)
    }

    /// Forgets `address` and imports it again by `id`, as a user adopting it would; the
    /// attributes the import leaves in state.
    pub fn reimport(&self, address: &str, id: &str) -> Json {
        self.terraform(&["state", "rm", address])
            .assert_ok("state rm");
        self.terraform(&["import", "-no-color", address, id])
            .assert_ok(&format!("import {address}"));
        self.state_attributes(address)
    }

    pub fn outputs(&self) -> Json {
        let run = self.terraform(&["output", "-json"]);
        run.assert_ok("output");
        serde_json::from_str(&run.stdout).expect("terraform output -json is JSON")
    }

    pub fn output(&self, name: &str) -> Json {
        self.outputs()[name]["value"].clone()
    }
}

/// The AKS API version the tests' own cluster writes use.
pub const AKS_API: &str = "api-version=2026-04-01";

/// The policy exemption API version the tests read exemptions with (the provider's).
pub const EXEMPTION_API: &str = "api-version=2024-12-01-preview";

/// The ARM id of cluster `name` in resource group `rg` of subscription `sub` (a bare GUID).
pub fn cluster_id(sub: &str, rg: &str, name: &str) -> String {
    format!(
        "/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.ContainerService/managedClusters/{name}"
    )
}

/// The body `az aks create` would send for a one-node cluster named `name`, without add-ons.
pub fn small_cluster(name: &str) -> Json {
    serde_json::json!({
        "location": "westeurope",
        "properties": {
            "dnsPrefix": name,
            "agentPoolProfiles": [{"name": "nodepool1", "count": 1, "vmSize": "Standard_B2s", "mode": "System"}]
        }
    })
}

/// Creates a resource group and a cluster through ARM (as `az aks create` would) and waits for
/// the cluster's provisioning to finish. Returns the cluster ID.
pub fn create_cluster(emulator: &Emulator, rg: &str, name: &str) -> String {
    let sub = emulator.subscription_id();
    let (status, body) = emulator.arm(
        "PUT",
        &format!("/subscriptions/{sub}/resourcegroups/{rg}?api-version=2021-04-01"),
        Some(&serde_json::json!({"location": "westeurope"})),
    );
    assert!(
        status == 200 || status == 201,
        "resource group: {status} {body}"
    );
    let id = cluster_id(&sub, rg, name);
    let (status, body) = emulator.arm(
        "PUT",
        &format!("{id}?{AKS_API}"),
        Some(&small_cluster(name)),
    );
    assert!(status == 200 || status == 201, "cluster: {status} {body}");
    wait_idle(emulator, &id);
    id
}

/// Waits until the cluster's provisioningState is terminal.
pub fn wait_idle(emulator: &Emulator, id: &str) -> Json {
    let started = Instant::now();
    loop {
        let (status, body) = emulator.arm("GET", &format!("{id}?{AKS_API}"), None);
        assert_eq!(status, 200, "{body}");
        let state = body["properties"]["provisioningState"]
            .as_str()
            .unwrap_or("Succeeded");
        if ["Succeeded", "Failed", "Canceled"].contains(&state) {
            return body;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "cluster stuck in {state}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}
