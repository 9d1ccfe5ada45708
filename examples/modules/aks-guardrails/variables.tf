variable "name" {
  description = "Short name of this guardrail set (e.g. \"prod\"); prefixes every policy object."
  type        = string

  validation {
    condition     = can(regex("^[a-z0-9][a-z0-9-]{0,15}$", var.name))
    error_message = "Use 1-16 lower-case letters, digits and dashes, so derived names stay within Azure's limits."
  }
}

variable "definition_scope" {
  description = "Where the custom definition and the initiative live: a subscription or management group ID. Null means the provider's subscription."
  type        = string
  default     = null
}

variable "cluster_ids" {
  description = "ARM IDs of the AKS clusters the guardrails are assigned to, one assignment each."
  type        = set(string)
}

variable "effect" {
  description = "What happens to a violating workload: audit (report only), deny (refused at admission) or disabled."
  type        = string
  default     = "audit"

  validation {
    condition     = contains(["audit", "deny", "disabled"], var.effect)
    error_message = "The effect must be audit, deny or disabled."
  }
}

variable "excluded_namespaces" {
  description = "Namespaces no guardrail looks at."
  type        = list(string)
  default     = ["kube-system", "gatekeeper-system", "azure-arc", "azure-extensions-usage-system"]
}

variable "exempt_images" {
  description = "Images allowed to use the latest tag anyway (exact references)."
  type        = list(string)
  default     = []
}

variable "enforcement_mode" {
  description = "Default enforces the effect; DoNotEnforce only reports, for a trial period."
  type        = string
  default     = "Default"
}
