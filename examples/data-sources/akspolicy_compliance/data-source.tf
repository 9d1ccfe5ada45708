data "akspolicy_compliance" "subscription" {
  scope        = "/subscriptions/00000000-0000-0000-0000-000000000000"
  trigger_scan = true
}

output "non_compliant_resources" {
  value = data.akspolicy_compliance.subscription.non_compliant_resources
}
