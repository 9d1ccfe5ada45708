terraform import akspolicy_remediation.enable_addon /subscriptions/00000000-0000-0000-0000-000000000000/providers/Microsoft.PolicyInsights/remediations/enable-policy-addon
