# A Gatekeeper mutator shipped as a custom Azure Policy mutation definition: containers that
# say nothing about privilege escalation get `allowPrivilegeEscalation: false` at admission.
# The mutator and the `test` blocks below are checked by `terraform plan`.
resource "akspolicy_kubernetes_mutation" "no_privilege_escalation" {
  name         = "k8s-no-privilege-escalation-default"
  display_name = "Containers default to allowPrivilegeEscalation: false"
  version      = "1.0.0"

  mutator = <<-YAML
    apiVersion: mutations.gatekeeper.sh/v1
    kind: Assign
    metadata:
      name: no-privilege-escalation-default
    spec:
      applyTo:
        - groups: [""]
          versions: ["v1"]
          kinds: ["Pod"]
      match:
        scope: Namespaced
        kinds:
          - apiGroups: [""]
            kinds: ["Pod"]
      location: "spec.containers[name: *].securityContext.allowPrivilegeEscalation"
      parameters:
        pathTests:
          - subPath: "spec.containers[name: *].securityContext.allowPrivilegeEscalation"
            condition: MustNotExist
        assign:
          value: false
  YAML

  test {
    name   = "sets the field where it is missing, keeps an explicit value"
    object = <<-YAML
      apiVersion: v1
      kind: Pod
      metadata: {name: web, namespace: shop}
      spec:
        containers:
          - {name: app, image: nginx}
          - {name: debug, image: busybox, securityContext: {allowPrivilegeEscalation: true}}
    YAML
    expect = <<-YAML
      spec:
        containers:
          - {name: app, securityContext: {allowPrivilegeEscalation: false}}
          - {name: debug, securityContext: {allowPrivilegeEscalation: true}}
    YAML
  }
}
