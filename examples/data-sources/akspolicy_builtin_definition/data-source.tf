# By display name (exact, case included) ...
data "akspolicy_builtin_definition" "no_privileged_containers" {
  display_name = "Kubernetes cluster should not allow privileged containers"
}

# ... or by name (the GUID in the definition's ID).
data "akspolicy_builtin_definition" "by_name" {
  name = "95edb821-ddaf-4404-9732-666045e056b4"
}

output "effect_allowed_values" {
  value = jsondecode(data.akspolicy_builtin_definition.no_privileged_containers.parameters).effect.allowedValues
}
