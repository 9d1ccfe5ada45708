# Quick start: look up the built-in "Kubernetes cluster should not allow privileged containers"
# and show what it lets you set. `make demo` applies this against the local emulator; the same
# file works against a real subscription.

terraform {
  required_providers {
    akspolicy = {
      source = "akspolicy/akspolicy"
    }
  }
}

# Credentials and endpoints come from the ARM_* environment variables (the emulator's env.sh
# sets them; against Azure use the same variables as the azurerm provider).
provider "akspolicy" {}

data "akspolicy_builtin_definition" "no_privileged_containers" {
  display_name = "Kubernetes cluster should not allow privileged containers"
}

locals {
  parameters = jsondecode(data.akspolicy_builtin_definition.no_privileged_containers.parameters)
}

output "policy_definition_id" {
  value = data.akspolicy_builtin_definition.no_privileged_containers.id
}

output "version" {
  value = data.akspolicy_builtin_definition.no_privileged_containers.version
}

output "gatekeeper_template" {
  value = data.akspolicy_builtin_definition.no_privileged_containers.template_url
}

output "parameters" {
  description = "Each parameter with its type, default and allowed values."
  value = {
    for name, p in local.parameters : name => {
      type           = p.type
      default        = jsonencode(try(p.defaultValue, null))
      allowed_values = try(p.allowedValues, null)
    }
  }
}

# Optional: protect a cluster. `make demo` creates one in the emulator and passes its ID;
# against Azure pass an existing AKS cluster (`-var cluster_id=/subscriptions/.../managedClusters/x`).
variable "cluster_id" {
  description = "ID of an AKS cluster to enable the policy add-on on and protect; empty skips it."
  type        = string
  default     = ""
}

resource "akspolicy_cluster_addon" "policy" {
  count      = var.cluster_id == "" ? 0 : 1
  cluster_id = var.cluster_id
}

# Deny privileged containers in the cluster's resource group. `source = "All"` makes
# Gatekeeper also check the Pods that Deployments, StatefulSets, Jobs... would create, so a
# privileged Deployment is refused at `kubectl apply` instead of failing later.
resource "akspolicy_assignment" "no_privileged" {
  count                = var.cluster_id == "" ? 0 : 1
  name                 = "no-privileged"
  scope                = regex("^/subscriptions/[^/]+/resourceGroups/[^/]+", var.cluster_id)
  policy_definition_id = data.akspolicy_builtin_definition.no_privileged_containers.id
  parameters = {
    effect = "Deny"
    source = "All"
  }
  depends_on = [akspolicy_cluster_addon.policy]
}

output "assignment_id" {
  value = try(akspolicy_assignment.no_privileged[0].id, null)
}
