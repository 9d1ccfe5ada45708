# Calls the aks-guardrails module twice: production clusters are protected (deny), staging
# clusters only report (audit) — same policy code, different settings, one plan.

terraform {
  required_version = ">= 1.0"
  required_providers {
    akspolicy = {
      source  = "akspolicy/akspolicy"
      version = "~> 0.1"
    }
  }
}

provider "akspolicy" {}

variable "subscription_id" {
  description = "The subscription the clusters live in."
  type        = string
  default     = "00000000-0000-0000-0000-000000000000"
}

locals {
  clusters = "/subscriptions/${var.subscription_id}/resourceGroups/aks-rg/providers/Microsoft.ContainerService/managedClusters"
}

module "production" {
  source = "../aks-guardrails"

  name        = "prod"
  effect      = "deny"
  cluster_ids = ["${local.clusters}/prod-weu", "${local.clusters}/prod-neu"]
  # Our own debugging sidecar may float; nothing else may.
  exempt_images = ["registry.example/tools/debug:latest"]
}

module "staging" {
  source = "../aks-guardrails"

  name             = "staging"
  effect           = "audit"
  enforcement_mode = "DoNotEnforce"
  cluster_ids      = ["${local.clusters}/staging"]
}

# One exemption against one assignment the module created.
resource "akspolicy_exemption" "prod_weu_batch" {
  name                            = "prod-batch-latest"
  scope                           = "${local.clusters}/prod-weu"
  policy_assignment_id            = module.production.assignment_ids["${local.clusters}/prod-weu"]
  policy_definition_reference_ids = ["NoLatestTag"]
  exemption_category              = "Waiver"
  expires_on                      = "2027-06-30T00:00:00Z"
  description                     = "Batch images move to pinned tags by June."
}

output "production_assignments" {
  value = module.production.assignment_ids
}

output "staging_assignments" {
  value = module.staging.assignment_ids
}
