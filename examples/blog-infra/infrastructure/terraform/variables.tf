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
