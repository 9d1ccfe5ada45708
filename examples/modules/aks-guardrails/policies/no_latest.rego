package k8snolatesttag

# A container image without a tag, or tagged latest, changes under your feet on every pull.
violation[{"msg": msg}] {
  container := input_containers[_]
  not exempt(container.image)
  mutable_tag(container.image)
  msg := sprintf("container <%v> uses a mutable image reference <%v>; pin a version tag or digest", [container.name, container.image])
}

input_containers[c] {
  c := input.review.object.spec.containers[_]
}

input_containers[c] {
  c := input.review.object.spec.initContainers[_]
}

mutable_tag(image) {
  endswith(image, ":latest")
}

mutable_tag(image) {
  not contains(image, "@")
  not contains(last_segment(image), ":")
}

last_segment(image) = s {
  parts := split(image, "/")
  s := parts[count(parts) - 1]
}

exempt(image) {
  image == input.parameters.exemptImages[_]
}
