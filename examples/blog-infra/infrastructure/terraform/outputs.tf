output "database_name" {
  description = "Name of the blog's database."
  value       = terraform_data.database.output.name
}

output "database_user" {
  description = "User the backend connects as."
  value       = terraform_data.database.output.user
}

output "database_url" {
  description = "Connection URL without the password (the backend reads it from the Secret)."
  value       = "postgres://${terraform_data.database.output.user}@postgres:5432/${terraform_data.database.output.name}"
}

output "database_storage" {
  description = "Volume size of the database, as a Kubernetes quantity."
  value       = "${terraform_data.database.output.storage_gb}Gi"
}

output "db_password" {
  description = "The database password: only ever rendered into the postgres Secret."
  value       = terraform_data.database_credentials.output.password
  sensitive   = true
}

output "kubeconfig" {
  description = "The cluster: a kubeconfig file's path or content (`cluster.kubeconfig` of development)."
  value       = terraform_data.platform.output.kubeconfig
  sensitive   = true
}

output "registry_url" {
  description = "The registry the environment's images are pushed to (`registry` of development)."
  value       = terraform_data.platform.output.registry
}
