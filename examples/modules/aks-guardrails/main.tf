# Guardrails for a set of AKS clusters: one custom Rego policy plus a built-in, bundled in an
# initiative, assigned to every cluster in `cluster_ids`.

data "akspolicy_builtin_definition" "no_privileged" {
  display_name = "Kubernetes cluster should not allow privileged containers"
}

resource "akspolicy_kubernetes_definition" "no_latest" {
  name         = "${var.name}-k8s-no-latest-tag"
  scope        = var.definition_scope
  display_name = "[${var.name}] Container images must be pinned"
  description  = "Refuses containers whose image has no tag or the latest tag."
  version      = "1.0.0"

  template {
    kind = "K8sNoLatestTag"
    rego = file("${path.module}/policies/no_latest.rego")
    parameters_schema = jsonencode({
      type = "object"
      properties = {
        exemptImages = { type = "array", items = { type = "string" } }
      }
    })
  }

  match {
    api_groups = [""]
    kinds      = ["Pod"]
  }

  effects        = ["audit", "deny", "disabled"]
  default_effect = "audit"

  # Evaluated by `terraform plan`: a policy that stops doing its job fails the plan.
  test {
    name       = "latest is refused"
    object     = file("${path.module}/tests/pod-latest.yaml")
    violations = "yes"
    message    = "mutable image reference"
  }

  test {
    name       = "pinned image passes"
    object     = file("${path.module}/tests/pod-pinned.yaml")
    violations = "no"
  }

  test {
    name       = "exempt image passes"
    object     = file("${path.module}/tests/pod-latest.yaml")
    parameters = jsonencode({ exemptImages = ["nginx:latest"] })
    violations = "no"
  }
}

resource "akspolicy_initiative" "guardrails" {
  name         = "${var.name}-aks-guardrails"
  scope        = var.definition_scope
  display_name = "[${var.name}] AKS guardrails"
  description  = "Pinned images and no privileged containers."
  version      = "1.0.0"
  metadata     = jsonencode({ category = "Kubernetes" })

  # The initiative's own parameters; each assignment sets them once for every member.
  parameters = jsonencode({
    effect = {
      type          = "String"
      allowedValues = ["audit", "deny", "disabled"]
      defaultValue  = "audit"
    }
    excludedNamespaces = {
      type         = "Array"
      defaultValue = ["kube-system", "gatekeeper-system"]
    }
    exemptImages = {
      type         = "Array"
      defaultValue = []
    }
  })

  policy_definition {
    policy_definition_id = akspolicy_kubernetes_definition.no_latest.id
    reference_id         = "NoLatestTag"
    parameters = jsonencode({
      effect             = "[parameters('effect')]"
      excludedNamespaces = "[parameters('excludedNamespaces')]"
      exemptImages       = "[parameters('exemptImages')]"
    })
  }

  policy_definition {
    policy_definition_id = data.akspolicy_builtin_definition.no_privileged.id
    reference_id         = "NoPrivilegedContainers"
    parameters = jsonencode({
      effect             = "[parameters('effect')]"
      excludedNamespaces = "[parameters('excludedNamespaces')]"
    })
  }
}

resource "akspolicy_assignment" "cluster" {
  for_each = var.cluster_ids

  # Resource-scope assignment names may be 64 characters; the cluster name keeps them readable.
  name                 = "${var.name}-guardrails-${element(reverse(split("/", each.value)), 0)}"
  scope                = each.value
  display_name         = "[${var.name}] AKS guardrails"
  policy_definition_id = akspolicy_initiative.guardrails.id
  enforcement_mode     = var.enforcement_mode

  parameters = {
    effect             = var.effect
    excludedNamespaces = var.excluded_namespaces
    exemptImages       = var.exempt_images
  }
}
