# Import takes the cluster's ID.
terraform import akspolicy_cluster_addon.policy /subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/aks-rg/providers/Microsoft.ContainerService/managedClusters/chamber-of-secrets
