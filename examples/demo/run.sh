#!/usr/bin/env bash
# `make demo`: start the emulator, create an AKS cluster in it, apply examples/quickstart (add-on
# + "no privileged containers" with deny), then show Gatekeeper refusing a privileged Deployment
# and admitting a compliant one, and the compliance summary.
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

step "Creating an AKS cluster in the emulator (akspolicy-emulator cluster create)"
cluster_id="$("$bin/akspolicy-emulator" cluster create --state-dir "$state" \
  --resource-group demo-rg --name demo-aks)"
echo "cluster: $cluster_id"

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
(cd "$work" && "$terraform" apply -input=false -auto-approve -no-color -var "cluster_id=$cluster_id")

step "terraform plan after apply (expect: no changes)"
(cd "$work" && "$terraform" plan -input=false -no-color -detailed-exitcode -var "cluster_id=$cluster_id" >/dev/null) \
  && echo "No changes. The infrastructure matches the configuration."

cat >"$demo/privileged.yaml" <<'YAML'
apiVersion: apps/v1
kind: Deployment
metadata:
  name: debug-tools
  namespace: apps
spec:
  selector:
    matchLabels: {app: debug-tools}
  template:
    metadata:
      labels: {app: debug-tools}
    spec:
      containers:
        - name: tools
          image: busybox:1.36
          securityContext:
            privileged: true
YAML
sed -e 's/debug-tools/web/g' -e 's/busybox:1.36/nginx:1.27/' -e 's/privileged: true/privileged: false/' \
  "$demo/privileged.yaml" >"$demo/compliant.yaml"

step "kubectl apply of a privileged Deployment (akspolicy-emulator admit; expect: denied)"
if "$bin/akspolicy-emulator" admit --state-dir "$state" --cluster "$cluster_id" -f "$demo/privileged.yaml"; then
  echo "unexpected: the privileged Deployment was admitted" >&2
  exit 1
fi

step "kubectl apply of a compliant Deployment (expect: admitted)"
"$bin/akspolicy-emulator" admit --state-dir "$state" --cluster "$cluster_id" -f "$demo/compliant.yaml"

step "Compliance summary of the assignment (policyStates/latest/summarize)"
assignment_id="$(cd "$work" && "$terraform" output -raw assignment_id)"
token="$(curl -s "${ARM_ACTIVE_DIRECTORY_AUTHORITY_HOST%/}/$ARM_TENANT_ID/oauth2/v2.0/token" \
  -d grant_type=client_credentials -d client_id="$ARM_CLIENT_ID" \
  --data-urlencode client_secret="$ARM_CLIENT_SECRET" \
  --data-urlencode scope=https://management.azure.com/.default |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')"
curl -s -X POST -H "Authorization: Bearer $token" -H 'Content-Length: 0' \
  "${ARM_RESOURCE_MANAGER_ENDPOINT%/}$assignment_id/providers/Microsoft.PolicyInsights/policyStates/latest/summarize?api-version=2019-10-01" |
  python3 -c '
import json, sys
r = json.load(sys.stdin)["value"][0]["results"]
print("non-compliant resources:", r["nonCompliantResources"], "| non-compliant policies:", r["nonCompliantPolicies"])
print("(the privileged Deployment was refused, so nothing running violates the policy)")'

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
