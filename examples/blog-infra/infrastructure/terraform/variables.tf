variable "environment" {
  description = "Name of the gitship environment (development, staging, production)."
  type        = string
}

variable "db_instance_class" {
  description = "Size class of the database (recorded for the operators; the database runs in the cluster)."
  type        = string
  default     = "small"
}

variable "db_storage_gb" {
  description = "Disk size of the database, in GiB."
  type        = number
  default     = 1
}

variable "backup_retention_days" {
  description = "How long database backups are kept."
  type        = number
  default     = 1
}

variable "cluster_kubeconfig" {
  description = "The cluster of the environment: a kubeconfig file's path (`~/` expanded; relative ones are relative to this module) or a kubeconfig's content. Development points it at a local kind, k3d or kubesim cluster (see the README); a real account would create the cluster here and output its kubeconfig or endpoint."
  type        = string
  default     = "~/.kube/config"
  # Content holds credentials: never shown in a plan.
  sensitive = true
}

variable "registry" {
  description = "The image repository prefix of the environment (a real account would create the registry here)."
  type        = string
  default     = "localhost:5000/blog"
}
