# Would the cluster admit these manifests? Answered at plan time from the Azure Policy
# assignments that apply to the cluster (its own, its resource group's, subscription's and
# management groups'), with the same Gatekeeper evaluation the add-on runs.
data "akspolicy_admission_review" "app" {
  cluster_id = "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/aks-rg/providers/Microsoft.ContainerService/managedClusters/prod"
  # Multi-document YAML, e.g. file("app.yaml") or a chart rendered with `helm template`.
  manifests = <<-YAML
    apiVersion: apps/v1
    kind: Deployment
    metadata:
      name: web
      namespace: apps
    spec:
      selector:
        matchLabels: {app: web}
      template:
        metadata:
          labels: {app: web}
        spec:
          containers:
            - name: web
              image: nginx:1.27
  YAML
}

output "admitted" {
  value = data.akspolicy_admission_review.app.allowed
}

# Every denial, as "<kind>/<name>: [constraint] message".
output "denials" {
  value = flatten([
    for r in data.akspolicy_admission_review.app.results :
    [for m in r.messages : "${r.kind}/${r.name}: ${m}"]
  ])
}
