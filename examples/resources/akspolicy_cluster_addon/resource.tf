resource "akspolicy_cluster_addon" "policy" {
  cluster_id = "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/aks-rg/providers/Microsoft.ContainerService/managedClusters/chamber-of-secrets"
}

# The add-on's managed identity, e.g. for role assignments. `identity` is empty while the
# add-on is off (e.g. switched off outside Terraform): try() keeps the output (and
# `terraform plan -refresh-only`) working then.
output "addon_identity" {
  value = try(akspolicy_cluster_addon.policy.identity[0].object_id, null)
}
