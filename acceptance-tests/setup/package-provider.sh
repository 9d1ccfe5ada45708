#!/usr/bin/env bash
# Packages a built provider binary the way Terraform installs providers, so `terraform init`
# works offline with `source = "akspolicy/akspolicy"` and a version constraint.
#
#   package-provider.sh version
#       Prints the version from Cargo.toml.
#   package-provider.sh os-arch [RUST_TARGET_TRIPLE]
#       Prints Terraform's OS_ARCH for a Rust target (default: this machine), e.g. linux_amd64.
#   package-provider.sh install BINARY [MIRROR]
#       Unpacked layout in a filesystem mirror (default ~/.terraform.d/plugins, an implied
#       mirror): MIRROR/registry.terraform.io/akspolicy/akspolicy/VERSION/OS_ARCH/
#       terraform-provider-akspolicy_vVERSION
#   package-provider.sh release OUTDIR BINARY[=OS_ARCH]...
#       Registry artefacts in OUTDIR: one terraform-provider-akspolicy_VERSION_OS_ARCH.zip per
#       binary, terraform-provider-akspolicy_VERSION_manifest.json and
#       terraform-provider-akspolicy_VERSION_SHA256SUMS. A zip placed at
#       MIRROR/registry.terraform.io/akspolicy/akspolicy/ is the packed mirror layout.
#
# VERSION overrides the version; OS_ARCH defaults to this machine's (e.g. linux_amd64).
set -euo pipefail

root="$(cd "$(dirname "$0")/../.." && pwd)"
type_name="akspolicy"
namespace="akspolicy"
hostname="registry.terraform.io"

die() { echo "package-provider: $*" >&2; exit 1; }

cargo_version() {
  # The first `version = "..."` is the [package] one: it sits right under `name`.
  sed -n 's/^version[[:space:]]*=[[:space:]]*"\([^"]*\)".*/\1/p' "$root/Cargo.toml" | head -n1
}

host_os_arch() {
  local os arch
  os="$(uname -s | tr '[:upper:]' '[:lower:]')"
  case "$(uname -m)" in
    x86_64 | amd64) arch=amd64 ;;
    aarch64 | arm64) arch=arm64 ;;
    armv7l | armv6l) arch=arm ;;
    i386 | i686) arch=386 ;;
    *) die "unknown machine architecture $(uname -m)" ;;
  esac
  echo "${os}_${arch}"
}

# Terraform's OS_ARCH for a Rust target triple such as x86_64-unknown-linux-gnu.
triple_os_arch() {
  local arch os
  case "${1%%-*}" in
    x86_64) arch=amd64 ;;
    aarch64) arch=arm64 ;;
    i686 | i586) arch=386 ;;
    arm | armv7) arch=arm ;;
    *) die "no Terraform architecture for target '$1'" ;;
  esac
  case "$1" in
    *-linux-*) os=linux ;;
    *-apple-darwin) os=darwin ;;
    *-freebsd) os=freebsd ;;
    *) die "no Terraform OS for target '$1' (linux, darwin and freebsd are packaged)" ;;
  esac
  echo "${os}_${arch}"
}

version="${VERSION:-$(cargo_version)}"
[[ "$version" =~ ^[0-9]+\.[0-9]+\.[0-9]+([-+][0-9A-Za-z.-]+)?$ ]] ||
  die "version '$version' is not semver; Terraform would skip the package"

# Writes ZIP containing FILE (stored under its base name), with `zip` when installed and
# Python's zipfile otherwise.
make_zip() {
  local zipfile="$1" file="$2"
  rm -f "$zipfile"
  if command -v zip >/dev/null 2>&1; then
    zip -q -j -X "$zipfile" "$file"
  else
    python3 - "$zipfile" "$file" <<'PY'
import os, sys, zipfile
out, path = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as z:
    info = zipfile.ZipInfo.from_file(path, arcname=os.path.basename(path))
    info.compress_type = zipfile.ZIP_DEFLATED
    # Keep the executable bit: Terraform runs the file straight from the unpacked cache.
    info.external_attr = (0o100755 & 0xFFFF) << 16
    with open(path, "rb") as f:
        z.writestr(info, f.read())
PY
  fi
}

sha256() {
  if command -v sha256sum >/dev/null 2>&1; then
    sha256sum "$1" | cut -d' ' -f1
  else
    python3 -c 'import hashlib,sys; print(hashlib.sha256(open(sys.argv[1],"rb").read()).hexdigest())' "$1"
  fi
}

cmd="${1:-}"
shift || true
case "$cmd" in
  version)
    echo "$version"
    ;;

  os-arch)
    if [[ -n "${1:-}" ]]; then triple_os_arch "$1"; else host_os_arch; fi
    ;;

  install)
    binary="${1:-}"
    mirror="${2:-${MIRROR:-$HOME/.terraform.d/plugins}}"
    [[ -x "$binary" ]] || die "no executable provider binary at '$binary' (run cargo build first)"
    os_arch="${OS_ARCH:-$(host_os_arch)}"
    dir="$mirror/$hostname/$namespace/$type_name/$version/$os_arch"
    mkdir -p "$dir"
    # Replace, never append: a stale binary with the same version breaks lock-file hashes.
    rm -f "$dir"/terraform-provider-"$type_name"*
    install -m 0755 "$binary" "$dir/terraform-provider-${type_name}_v$version"
    echo "installed $namespace/$type_name $version ($os_arch) into $mirror"
    echo "  $dir/terraform-provider-${type_name}_v$version"
    ;;

  release)
    out="${1:-}"
    shift || true
    [[ -n "$out" && $# -gt 0 ]] || die "usage: release OUTDIR BINARY[=OS_ARCH]..."
    mkdir -p "$out"
    prefix="terraform-provider-${type_name}_${version}"
    staging="$(mktemp -d)"
    trap 'rm -rf "$staging"' EXIT
    zips=()
    for spec in "$@"; do
      binary="${spec%%=*}"
      os_arch="$(host_os_arch)"
      [[ "$spec" == *=* ]] && os_arch="${spec#*=}"
      [[ -x "$binary" ]] || die "no executable provider binary at '$binary'"
      mkdir -p "$staging/$os_arch"
      install -m 0755 "$binary" "$staging/$os_arch/terraform-provider-${type_name}_v$version"
      zipname="${prefix}_${os_arch}.zip"
      make_zip "$out/$zipname" "$staging/$os_arch/terraform-provider-${type_name}_v$version"
      zips+=("$zipname")
    done
    cp "$root/terraform-registry-manifest.json" "$out/${prefix}_manifest.json"
    (
      cd "$out"
      for f in "${zips[@]}" "${prefix}_manifest.json"; do
        printf '%s  %s\n' "$(sha256 "$f")" "$f"
      done
    ) >"$out/${prefix}_SHA256SUMS"
    echo "release artefacts for $namespace/$type_name $version in $out:"
    for f in "${zips[@]}" "${prefix}_manifest.json" "${prefix}_SHA256SUMS"; do
      echo "  $f"
    done
    ;;

  *)
    die "usage: package-provider.sh version | os-arch [TRIPLE] | install BINARY [MIRROR] | release OUTDIR BINARY[=OS_ARCH]..."
    ;;
esac
