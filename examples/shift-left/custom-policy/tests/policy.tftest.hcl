# Run with `terraform test` (Terraform 1.8+) after `source <emulator-state>/env.sh` and
# TF_VAR_resource_group_id / TF_VAR_cluster_id naming a resource group and an AKS cluster in it.

# Unit tests of the Rego: no cluster involved, only the provider function.
run "template_unit_tests" {
  command = plan

  assert {
    condition = provider::akspolicy::evaluate(
      akspolicy_kubernetes_definition.pinned_images.rendered_template,
      yamlencode({
        apiVersion = "v1"
        kind       = "Pod"
        metadata   = { name = "web" }
        spec       = { containers = [{ name = "app", image = "nginx:latest" }] }
      }),
      {}
    ) == tolist(["container app must use a pinned image tag, not nginx:latest"])
    error_message = "a Pod with a latest image must violate the policy once"
  }

  assert {
    condition = length(provider::akspolicy::evaluate(
      akspolicy_kubernetes_definition.pinned_images.rendered_template,
      yamlencode({
        apiVersion = "v1"
        kind       = "Pod"
        metadata   = { name = "web" }
        spec       = { containers = [{ name = "app", image = "nginx:1.27" }] }
      }),
      {}
    )) == 0
    error_message = "a Pod with a pinned image must pass"
  }
}

# End to end: assign the policy and ask the cluster's add-on.
run "latest_image_is_denied_on_the_cluster" {
  variables {
    manifests = <<-YAML
      apiVersion: v1
      kind: Pod
      metadata:
        name: web
        namespace: apps
      spec:
        containers:
          - name: app
            image: nginx:latest
    YAML
  }

  assert {
    condition     = !data.akspolicy_admission_review.manifests[0].allowed
    error_message = "the cluster must deny a Pod with a latest image"
  }

  assert {
    condition     = length(regexall("must use a pinned image tag", data.akspolicy_admission_review.manifests[0].results[0].messages[0])) == 1
    error_message = "the denial must carry the policy's message"
  }
}

run "pinned_image_is_admitted_on_the_cluster" {
  variables {
    manifests = <<-YAML
      apiVersion: v1
      kind: Pod
      metadata:
        name: web
        namespace: apps
      spec:
        containers:
          - name: app
            image: nginx:1.27
    YAML
  }

  assert {
    condition     = data.akspolicy_admission_review.manifests[0].allowed
    error_message = "the cluster must admit a Pod with a pinned image"
  }
}
