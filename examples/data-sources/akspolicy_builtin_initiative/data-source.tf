# The Pod Security Standards baseline initiative, by its exact display name ...
data "akspolicy_builtin_initiative" "pss_baseline" {
  display_name = "Kubernetes cluster pod security baseline standards for Linux-based workloads"
}

# ... or by name (the GUID in its ID).
data "akspolicy_builtin_initiative" "pss_restricted" {
  name = "42b8ef37-b724-4e24-bbc8-7a7708edfe00"
}

output "baseline_members" {
  value = data.akspolicy_builtin_initiative.pss_baseline.policy_definition_ids
}
