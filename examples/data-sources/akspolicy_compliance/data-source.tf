# A data source is read at every plan, so trigger_scan = true starts a scan (minutes in
# Azure) at every plan. In CI keep it off and scan in a step of its own:
#   terraform plan ...                                  # no scan
#   terraform apply -refresh-only -var scan_compliance=true -auto-approve   # separate step
variable "scan_compliance" {
  type    = bool
  default = false
}

data "akspolicy_compliance" "subscription" {
  scope        = "/subscriptions/00000000-0000-0000-0000-000000000000"
  trigger_scan = var.scan_compliance
}

output "non_compliant_resources" {
  value = data.akspolicy_compliance.subscription.non_compliant_resources
}
