# Unit-test a custom policy's Rego without a cluster (Terraform 1.8+), e.g. in a check block or
# a `terraform test` assertion.
check "no_latest_tag_policy" {
  assert {
    condition = length(provider::akspolicy::evaluate(
      akspolicy_kubernetes_definition.no_latest.rendered_template,
      yamlencode({
        apiVersion = "v1"
        kind       = "Pod"
        metadata   = { name = "web" }
        spec       = { containers = [{ name = "app", image = "nginx:latest" }] }
      }),
      {}
    )) == 1
    error_message = "The policy must report a Pod whose image uses the latest tag."
  }
}
