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
