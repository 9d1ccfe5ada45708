output "definition_id" {
  description = "ID of the custom Rego definition."
  value       = akspolicy_kubernetes_definition.no_latest.id
}

output "initiative_id" {
  description = "ID of the guardrails initiative."
  value       = akspolicy_initiative.guardrails.id
}

output "assignment_ids" {
  description = "Assignment ID per cluster ID (e.g. for exemptions or remediation)."
  value       = { for cluster, a in akspolicy_assignment.cluster : cluster => a.id }
}
