#!/usr/bin/env bash
# Installs the Azure SDK for Python into a virtual environment under .tools/python-sdk, for the
# acceptance tests that drive the emulator with an official client (acceptance-tests/sdk.rs).
# Those tests skip themselves when the environment is missing. Idempotent: a complete
# environment is left as it is.
set -euo pipefail

root="$(cd "$(dirname "$0")/../.." && pwd)"
venv="$root/.tools/python-sdk"
marker="$venv/.complete"
packages=(
  azure-identity
  azure-mgmt-authorization
  azure-mgmt-containerservice
  azure-mgmt-policyinsights
  azure-mgmt-resource
  azure-mgmt-resource-deployments
  azure-mgmt-resource-policy
)

if [[ -f "$marker" ]] && [[ "$(cat "$marker")" == "${packages[*]}" ]]; then
  exit 0
fi
python="$(command -v python3 || command -v python || true)"
if [[ -z "$python" ]]; then
  echo "install-python-sdk: python3 with venv is needed" >&2
  exit 1
fi
rm -rf "$venv"
"$python" -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check "${packages[@]}"
echo "${packages[*]}" > "$marker"
