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
