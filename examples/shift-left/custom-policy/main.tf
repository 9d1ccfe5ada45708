terraform {
  required_providers {
    akspolicy = {
      source = "akspolicy/akspolicy"
    }
  }
}

variable "resource_group_id" {
  description = "The resource group whose clusters the policy is assigned to."
  type        = string
}

variable "cluster_id" {
  description = "A cluster in that resource group, to ask what its add-on would decide."
  type        = string
}

variable "manifests" {
  description = "Manifests to review on the cluster."
  type        = string
  default     = ""
}

resource "akspolicy_kubernetes_definition" "pinned_images" {
  name         = "k8s-pinned-images"
  display_name = "Container images must not use the latest tag"
  template {
    kind = "K8sPinnedImages"
    rego = <<-REGO
      package k8spinnedimages

      violation[{"msg": msg}] {
        container := input.review.object.spec.containers[_]
        not pinned(container.image)
        msg := sprintf("container %v must use a pinned image tag, not %v", [container.name, container.image])
      }

      pinned(image) {
        contains(image, ":")
        not endswith(image, ":latest")
      }
    REGO
  }
  match {
    api_groups = [""]
    kinds      = ["Pod"]
  }
  effects        = ["audit", "deny", "disabled"]
  default_effect = "deny"
}

resource "akspolicy_cluster_addon" "policy" {
  cluster_id = var.cluster_id
  enabled    = true
}

resource "akspolicy_assignment" "pinned_images" {
  name                 = "pinned-images"
  scope                = var.resource_group_id
  policy_definition_id = akspolicy_kubernetes_definition.pinned_images.id
}

data "akspolicy_admission_review" "manifests" {
  count      = var.manifests == "" ? 0 : 1
  cluster_id = var.cluster_id
  manifests  = var.manifests
  depends_on = [akspolicy_assignment.pinned_images, akspolicy_cluster_addon.policy]
}

output "rendered_template" {
  value = akspolicy_kubernetes_definition.pinned_images.rendered_template
}
