# A Gatekeeper policy written in Rego, shipped as a custom Azure Policy definition.
# Templates, Rego and the `test` blocks below are checked by `terraform plan`.
resource "akspolicy_kubernetes_definition" "no_latest" {
  name         = "k8s-no-latest-tag"
  display_name = "Container images must not use the latest tag"
  version      = "1.0.0"

  template {
    kind = "K8sNoLatestTag"
    rego = <<-REGO
      package k8snolatesttag

      violation[{"msg": msg}] {
        container := input.review.object.spec.containers[_]
        endswith(container.image, ":latest")
        not exempt(container.image)
        msg := sprintf("container %v uses the latest tag: %v", [container.name, container.image])
      }

      exempt(image) {
        image == input.parameters.exemptImages[_]
      }
    REGO
    parameters_schema = jsonencode({
      type = "object"
      properties = {
        exemptImages = { type = "array", items = { type = "string" } }
      }
    })
  }

  match {
    api_groups = [""]
    kinds      = ["Pod"]
  }

  effects        = ["audit", "deny", "disabled"]
  default_effect = "audit"

  test {
    name       = "latest is refused"
    object     = <<-YAML
      apiVersion: v1
      kind: Pod
      metadata:
        name: web
      spec:
        containers:
          - name: web
            image: nginx:latest
    YAML
    violations = "yes"
    message    = "latest"
  }

  test {
    name       = "exempt image passes"
    object     = <<-YAML
      apiVersion: v1
      kind: Pod
      metadata:
        name: tools
      spec:
        containers:
          - name: tools
            image: registry.example/tools:latest
    YAML
    parameters = jsonencode({ exemptImages = ["registry.example/tools:latest"] })
    violations = "no"
  }
}
