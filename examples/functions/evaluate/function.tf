# Unit-test a custom policy's Rego without a cluster (Terraform 1.8+), in a check block, an
# output or a `terraform test` assertion.
resource "akspolicy_kubernetes_definition" "no_latest" {
  name         = "k8s-no-latest-tag"
  display_name = "Container images must not use the latest tag"
  template {
    kind = "K8sNoLatestTag"
    rego = <<-REGO
      package k8snolatesttag

      violation[{"msg": msg}] {
        container := input.review.object.spec.containers[_]
        endswith(container.image, ":latest")
        msg := sprintf("container %v uses the latest tag", [container.name])
      }
    REGO
  }
  match {
    api_groups = [""]
    kinds      = ["Pod"]
  }
}

check "no_latest_tag_policy" {
  assert {
    condition = provider::akspolicy::evaluate(
      akspolicy_kubernetes_definition.no_latest.rendered_template,
      yamlencode({
        apiVersion = "v1"
        kind       = "Pod"
        metadata   = { name = "web" }
        spec       = { containers = [{ name = "app", image = "nginx:latest" }] }
      }),
      {}
    ) == tolist(["container app uses the latest tag"])
    error_message = "The policy must report a Pod whose image uses the latest tag."
  }
}
