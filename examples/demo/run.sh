#!/usr/bin/env bash
# `make demo`: start the emulator, apply examples/quickstart against it, show the result.
# Usage: run.sh DEMO_DIR TERRAFORM
set -euo pipefail

root="$(cd "$(dirname "$0")/../.." && pwd)"
demo="${1:-$root/target/demo}"
terraform="${2:-terraform}"
bin="$root/target/debug"
state="$demo/emulator"
work="$demo/quickstart"

step() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }

mkdir -p "$demo" "$state"
if [[ -f "$demo/emulator.pid" ]] && kill -0 "$(cat "$demo/emulator.pid")" 2>/dev/null; then
  step "Stopping the emulator from the previous demo"
  kill "$(cat "$demo/emulator.pid")" || true
  sleep 1
fi

step "Starting akspolicy-emulator (state in $state)"
"$bin/akspolicy-emulator" serve --state-dir "$state" --listen 127.0.0.1:0 \
  >"$demo/emulator.ready" 2>"$demo/emulator.log" &
echo $! >"$demo/emulator.pid"
for _ in $(seq 1 100); do
  [[ -s "$demo/emulator.ready" ]] && break
  if ! kill -0 "$(cat "$demo/emulator.pid")" 2>/dev/null; then
    echo "the emulator exited; see $demo/emulator.log" >&2
    cat "$demo/emulator.log" >&2
    exit 1
  fi
  sleep 0.1
done
head -n1 "$demo/emulator.ready"
# shellcheck disable=SC1091
source "$state/env.sh"
echo "ARM endpoint: $ARM_RESOURCE_MANAGER_ENDPOINT  subscription: $ARM_SUBSCRIPTION_ID"

step "Pointing Terraform at the freshly built provider (dev_overrides)"
mkdir -p "$work"
cp "$root"/examples/quickstart/*.tf "$work"/
cat >"$demo/terraformrc" <<RC
provider_installation {
  dev_overrides {
    "akspolicy/akspolicy" = "$bin"
  }
  direct {}
}
RC
export TF_CLI_CONFIG_FILE="$demo/terraformrc" CHECKPOINT_DISABLE=1 TF_IN_AUTOMATION=1

step "terraform apply (examples/quickstart)"
(cd "$work" && "$terraform" apply -input=false -auto-approve -no-color)

step "terraform plan after apply (expect: no changes)"
(cd "$work" && "$terraform" plan -input=false -no-color -detailed-exitcode >/dev/null) \
  && echo "No changes. The infrastructure matches the configuration."

step "Done. The emulator keeps running (pid $(cat "$demo/emulator.pid")); 'make demo-stop' stops it."
cat <<TXT

To use the same configuration against a real subscription, unset the emulator variables and
authenticate the way the azurerm provider does, for example:

  unset ARM_ENVIRONMENT ARM_RESOURCE_MANAGER_ENDPOINT ARM_RESOURCE_MANAGER_AUDIENCE \\
        ARM_ACTIVE_DIRECTORY_AUTHORITY_HOST ARM_METADATA_HOSTNAME SSL_CERT_FILE REQUESTS_CA_BUNDLE CURL_CA_BUNDLE
  export ARM_SUBSCRIPTION_ID=<subscription> ARM_TENANT_ID=<tenant>
  export ARM_CLIENT_ID=<app id> ARM_CLIENT_SECRET=<secret>    # or: az login (Azure CLI)
  cd $work && terraform apply
TXT
