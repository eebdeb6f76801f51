locals {
  database_name = "blog_${var.environment}"
  database_user = "blog"
}

# The database's identity and settings. Its id (a UUID chosen at creation) seeds the password, so
# the password is stable for the life of the environment and unknown until the first apply.
resource "terraform_data" "database" {
  input = {
    name                  = local.database_name
    user                  = local.database_user
    instance_class        = var.db_instance_class
    storage_gb            = var.db_storage_gb
    backup_retention_days = var.backup_retention_days
  }
}

resource "terraform_data" "database_credentials" {
  input = {
    password = substr(sha256("${terraform_data.database.id}/${var.environment}"), 0, 32)
  }
}

# Where the environment runs: the cluster and the registry. `development` takes both from the
# outputs below (`cluster.kubeconfig: ${terraform.kubeconfig}`, `registry:
# ${terraform.registry_url}`), so one `gitship deploy development` applies this module first and
# then deploys to what it names. Here they are values a developer points at a local cluster; on a
# cloud account these would be the cluster and registry resources themselves.
resource "terraform_data" "platform" {
  input = {
    kubeconfig = pathexpand(var.cluster_kubeconfig)
    registry   = var.registry
  }
}
