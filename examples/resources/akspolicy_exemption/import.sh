# Policy exemptions are imported by their ARM ID:
terraform import akspolicy_exemption.legacy_team /subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/legacy-rg/providers/Microsoft.Authorization/policyExemptions/legacy-team-waiver
