//! Release artefacts and local installation: the freshly built provider, packaged by the same
//! script `make install` and `make release` use, installs with a plain `terraform init` —
//! offline, with a version constraint, no dev_overrides — from the unpacked and the packed
//! mirror layouts.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::harness::{provider_binary, repo_root, terraform_binary, TfRun};

const VERSION: &str = env!("CARGO_PKG_VERSION");
const PACKAGE_DIR: &str = "registry.terraform.io/akspolicy/akspolicy";

fn package_script() -> PathBuf {
    repo_root().join("acceptance-tests/setup/package-provider.sh")
}

/// Runs the packaging script with `args`, asserting success.
fn package(args: &[&str], home: &Path) -> String {
    let out = Command::new("bash")
        .arg(package_script())
        .args(args)
        .env("HOME", home)
        .env_remove("MIRROR")
        .env_remove("VERSION")
        .env_remove("OS_ARCH")
        .stdin(Stdio::null())
        .output()
        .expect("run package-provider.sh");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "package-provider.sh {args:?} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// A working directory with a configuration that pins the provider by version, and a CLI
/// config without dev_overrides, so only a real installation can satisfy `init`.
struct Project {
    dir: tempfile::TempDir,
    home: tempfile::TempDir,
}

impl Project {
    fn new() -> Project {
        let dir = tempfile::tempdir().expect("temp dir");
        let home = tempfile::tempdir().expect("temp home");
        std::fs::write(
            dir.path().join("main.tf"),
            r#"terraform {
  required_providers {
    akspolicy = {
      source  = "akspolicy/akspolicy"
      version = "~> 0.1"
    }
  }
}

provider "akspolicy" {}

data "akspolicy_builtin_definition" "no_privileged" {
  display_name = "Kubernetes cluster should not allow privileged containers"
}
"#,
        )
        .expect("write main.tf");
        Project { dir, home }
    }

    fn terraform(&self, args: &[&str]) -> TfRun {
        // An empty CLI config: no dev_overrides, no network mirror; the implied mirror under
        // HOME is the only other place Terraform may look.
        let cli_config = self.home.path().join("terraformrc");
        std::fs::write(&cli_config, "").expect("write CLI config");
        let mut cmd = Command::new(terraform_binary());
        cmd.args(args)
            .current_dir(self.dir.path())
            .stdin(Stdio::null())
            .env("HOME", self.home.path())
            .env("XDG_DATA_HOME", self.home.path().join(".local/share"))
            .env("TF_CLI_CONFIG_FILE", &cli_config)
            .env("CHECKPOINT_DISABLE", "1")
            .env("TF_IN_AUTOMATION", "1")
            .env_remove("TF_PLUGIN_CACHE_DIR")
            .env_remove("TF_LOG")
            .env_remove("TF_LOG_PROVIDER");
        let out = cmd.output().expect("run terraform");
        TfRun {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// `init` (with extra args), then `validate`, then the lock file's text.
    fn init_and_validate(&self, init_args: &[&str]) -> String {
        let mut args = vec!["init", "-input=false", "-no-color"];
        args.extend_from_slice(init_args);
        let init = self.terraform(&args);
        init.assert_ok("init");
        assert!(
            init.stdout
                .contains(&format!("Installed akspolicy/akspolicy v{VERSION}")),
            "init did not install our version:\n{}",
            init.combined()
        );
        self.terraform(&["validate", "-no-color"])
            .assert_ok("validate");
        std::fs::read_to_string(self.dir.path().join(".terraform.lock.hcl")).expect("lock file")
    }
}

fn assert_lock_names_our_version(lock: &str) {
    assert!(
        lock.contains(&format!("provider \"{PACKAGE_DIR}\"")),
        "lock file: {lock}"
    );
    assert!(
        lock.contains(&format!("version     = \"{VERSION}\"")),
        "lock file does not name {VERSION}: {lock}"
    );
    assert!(
        lock.contains("constraints = \"~> 0.1\""),
        "lock file: {lock}"
    );
}

fn sha256_hex(path: &Path) -> String {
    let bytes = std::fs::read(path).expect("read artefact");
    let digest = ring::digest::digest(&ring::digest::SHA256, &bytes);
    digest.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

fn host_os_arch() -> String {
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "arm" => "arm",
        other => other,
    };
    format!("{}_{arch}", std::env::consts::OS)
}

#[test]
fn version_flag_answers_without_terraform() {
    let out = Command::new(provider_binary())
        .arg("--version")
        .env_remove("TF_PLUGIN_MAGIC_COOKIE")
        .stdin(Stdio::null())
        .output()
        .expect("run provider");
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("terraform-provider-akspolicy {VERSION} (tfplugin5)")
    );
}

#[test]
fn script_reports_the_cargo_version() {
    let home = tempfile::tempdir().expect("temp home");
    assert_eq!(package(&["version"], home.path()).trim(), VERSION);
}

#[test]
fn unpacked_mirror_installs_offline_with_a_version_constraint() {
    let project = Project::new();
    let mirror = tempfile::tempdir().expect("mirror");
    let binary = provider_binary();
    let mirror_arg = mirror.path().to_str().expect("utf-8 temp path");
    package(
        &["install", binary.to_str().expect("utf-8 path"), mirror_arg],
        project.home.path(),
    );
    let installed = mirror
        .path()
        .join(PACKAGE_DIR)
        .join(VERSION)
        .join(host_os_arch())
        .join(format!("terraform-provider-akspolicy_v{VERSION}"));
    assert!(installed.is_file(), "{} missing", installed.display());

    let lock = project.init_and_validate(&[&format!("-plugin-dir={mirror_arg}")]);
    assert_lock_names_our_version(&lock);
}

#[test]
fn default_install_lands_in_the_implied_mirror() {
    // `make install` without MIRROR writes ~/.terraform.d/plugins, which Terraform searches
    // on its own: a bare `terraform init` must find the provider there.
    let project = Project::new();
    let binary = provider_binary();
    let out = package(
        &["install", binary.to_str().expect("utf-8 path")],
        project.home.path(),
    );
    assert!(out.contains(".terraform.d/plugins"), "{out}");
    let lock = project.init_and_validate(&[]);
    assert_lock_names_our_version(&lock);
}

#[test]
fn release_artefacts_install_from_the_packed_layout() {
    let project = Project::new();
    let out = tempfile::tempdir().expect("release dir");
    let binary = provider_binary();
    let os_arch = host_os_arch();
    package(
        &[
            "release",
            out.path().to_str().expect("utf-8 path"),
            &format!("{}={os_arch}", binary.to_str().expect("utf-8 path")),
        ],
        project.home.path(),
    );

    let prefix = format!("terraform-provider-akspolicy_{VERSION}");
    let zip = out.path().join(format!("{prefix}_{os_arch}.zip"));
    let manifest = out.path().join(format!("{prefix}_manifest.json"));
    let sums = out.path().join(format!("{prefix}_SHA256SUMS"));

    let manifest_json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&manifest).expect("manifest")).expect("json");
    assert_eq!(
        manifest_json,
        serde_json::json!({"version": 1, "metadata": {"protocol_versions": ["5.0"]}})
    );
    let root_manifest: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(repo_root().join("terraform-registry-manifest.json"))
            .expect("root manifest"),
    )
    .expect("json");
    assert_eq!(root_manifest, manifest_json);

    // SHA256SUMS in the `sha256sum` format registries verify: every artefact, right hash.
    let sums_text = std::fs::read_to_string(&sums).expect("SHA256SUMS");
    for file in [&zip, &manifest] {
        let name = file
            .file_name()
            .expect("name")
            .to_string_lossy()
            .into_owned();
        let line = format!("{}  {name}", sha256_hex(file));
        assert!(
            sums_text.lines().any(|l| l == line),
            "{line} not in SHA256SUMS:\n{sums_text}"
        );
    }

    // The packed mirror layout: the zip as is, under the provider's directory.
    let mirror = tempfile::tempdir().expect("mirror");
    let package_dir = mirror.path().join(PACKAGE_DIR);
    std::fs::create_dir_all(&package_dir).expect("mkdir");
    std::fs::copy(&zip, package_dir.join(zip.file_name().expect("name"))).expect("copy zip");
    let lock = project.init_and_validate(&[&format!(
        "-plugin-dir={}",
        mirror.path().to_str().expect("utf-8 path")
    )]);
    assert_lock_names_our_version(&lock);
}
