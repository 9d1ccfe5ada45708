#!/usr/bin/env bash
# Prints the newest Terraform on this machine when it is not the pinned one the suite already
# ran with: $AKSPOLICY_TERRAFORM_LATEST, else `terraform` on PATH. Prints nothing (and says why
# on stderr) when there is none, so `make test` can say plainly that the second run is skipped.
set -euo pipefail
pinned="${1:?usage: latest-terraform.sh PINNED_TERRAFORM}"

candidate="${AKSPOLICY_TERRAFORM_LATEST:-$(command -v terraform || true)}"
if [[ -z "$candidate" || ! -x "$candidate" ]]; then
  echo "no Terraform on PATH and AKSPOLICY_TERRAFORM_LATEST unset" >&2
  exit 0
fi
version_of() { "$1" version -json 2>/dev/null | sed -n 's/.*"terraform_version": *"\([^"]*\)".*/\1/p' | head -n1; }
newest="$(version_of "$candidate")"
if [[ -z "$newest" ]]; then
  echo "$candidate did not report its version" >&2
  exit 0
fi
if [[ "$newest" == "$(version_of "$pinned")" ]]; then
  echo "the only Terraform found is the pinned $newest" >&2
  exit 0
fi
echo "$candidate"
