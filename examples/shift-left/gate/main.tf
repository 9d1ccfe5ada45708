terraform {
  required_version = ">= 1.5"
  required_providers {
    akspolicy = {
      source = "akspolicy/akspolicy"
    }
  }
}

variable "cluster_id" {
  description = "The AKS cluster the workload is deployed to."
  type        = string
}

variable "manifests" {
  description = "The workload's Kubernetes manifests (multi-document YAML)."
  type        = string
}

# What the cluster's Azure Policy add-on would decide for the manifests, from every assignment
# that applies to the cluster.
data "akspolicy_admission_review" "workload" {
  cluster_id = var.cluster_id
  manifests  = var.manifests
}

locals {
  denials = flatten([
    for r in data.akspolicy_admission_review.workload.results :
    [for m in r.messages : "${r.kind} ${r.namespace}/${r.name}: ${m}"]
  ])
  warnings = flatten([
    for r in data.akspolicy_admission_review.workload.results :
    [for w in r.warnings : "${r.kind} ${r.namespace}/${r.name}: ${w}"]
  ])
}

# Stands in for the resource that deploys the workload (kubernetes_manifest, helm_release, ...):
# the precondition stops the plan before anything reaches the cluster.
resource "terraform_data" "workload" {
  input = var.manifests

  lifecycle {
    precondition {
      condition     = data.akspolicy_admission_review.workload.allowed
      error_message = "The cluster's Azure Policy would deny this workload:\n${join("\n", local.denials)}"
    }
  }
}

# Warnings never block; they show up in every plan until fixed.
check "policy_warnings" {
  assert {
    condition     = length(local.warnings) == 0
    error_message = "Azure Policy warnings for this workload:\n${join("\n", local.warnings)}"
  }
}
