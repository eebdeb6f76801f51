# The blog's infrastructure. It runs fully offline: only the built-in `terraform_data` resource is
# used, so `terraform init` downloads no provider. In a real deployment these resources would be a
# managed database, buckets and DNS; the outputs feed the Kubernetes manifests the same way.
terraform {
  required_version = ">= 1.5"
}
