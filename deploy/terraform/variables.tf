variable "secret_arn" {
  description = "Full ARN (with the 6-character suffix) of the secret to rotate."
  type        = string
  validation {
    condition     = can(regex("^arn:aws[a-z-]*:secretsmanager:[a-z0-9-]+:[0-9]{12}:secret:.+$", var.secret_arn))
    error_message = "secret_arn must be a full Secrets Manager secret ARN."
  }
}

variable "master_secret_arn" {
  description = "Alternating users only: full ARN of the master secret named by the secret's masterarn (read-only for the function). Null for single user."
  type        = string
  default     = null
}

variable "kms_key_arn" {
  description = "ARN of the customer managed KMS key encrypting the secret(s); null when they use aws/secretsmanager."
  type        = string
  default     = null
}

variable "package_zip" {
  description = "Path of the zip built by scripts/package-lambda."
  type        = string
  default     = "../../target/lambda-package/bootstrap.zip"
}

variable "function_name" {
  type    = string
  default = "keyroll-rotation"
}

variable "architecture" {
  description = "x86_64 or arm64; must match the package (scripts/package-lambda --arch)."
  type        = string
  default     = "x86_64"
  validation {
    condition     = contains(["x86_64", "arm64"], var.architecture)
    error_message = "architecture must be x86_64 or arm64."
  }
}

variable "schedule_expression" {
  description = "Secrets Manager schedule expression, e.g. rate(30 days) or cron(0 4 ? * SUN *)."
  type        = string
  default     = "rate(30 days)"
}

variable "rotation_window" {
  description = "How long each rotation window lasts (Secrets Manager's Duration), e.g. 3h."
  type        = string
  default     = "3h"
}

variable "rotate_immediately" {
  description = "Rotate once when the schedule is created or changed."
  type        = bool
  default     = true
}

variable "subnet_ids" {
  description = "Private subnets to run the function in (the database's VPC); empty: no VPC. They need a route to Secrets Manager (VPC endpoint or NAT)."
  type        = list(string)
  default     = []
}

variable "security_group_ids" {
  description = "Security groups of the function (egress to the database port and HTTPS)."
  type        = list(string)
  default     = []
}

variable "secrets_manager_endpoint" {
  description = "Secrets Manager endpoint URL (e.g. a VPC endpoint); null: the regional endpoint."
  type        = string
  default     = null
}

variable "password_length" {
  type    = number
  default = 32
}

variable "exclude_characters" {
  description = "Characters never used in generated passwords. Null: each engine's default, as AWS's functions (:/@\"'\\ for PostgreSQL, /@\"'\\ for MySQL and MariaDB); a value replaces it for every engine."
  type        = string
  default     = null
}

variable "log_retention_days" {
  type    = number
  default = 90
}

variable "tags" {
  type    = map(string)
  default = {}
}

variable "iam_user_path" {
  description = "IAM access-key rotator only (a secret with \"engine\": \"iam\"): the path of the IAM users whose keys the function may list, create, deactivate and delete, e.g. /keyroll/. Null: no iam: permission at all."
  type        = string
  default     = null
  validation {
    condition     = var.iam_user_path == null || can(regex("^/([A-Za-z0-9+=,.@_-]+/)+$", var.iam_user_path))
    error_message = "iam_user_path must be an IAM path below the root, such as /keyroll/ (starting and ending with /)."
  }
}

variable "max_days_since_rotation" {
  description = "The DaysSinceLastRotation alarm fires above this age (days); also the daily report's maxAgeDays. Set it a few days above the schedule's interval."
  type        = number
  default     = 35
  validation {
    condition     = var.max_days_since_rotation >= 1 && var.max_days_since_rotation <= 3650 && floor(var.max_days_since_rotation) == var.max_days_since_rotation
    error_message = "max_days_since_rotation must be a whole number of days from 1 to 3650."
  }
}

variable "report_schedule" {
  description = "EventBridge schedule of the daily report (DaysSinceLastRotation per secret)."
  type        = string
  default     = "cron(0 6 * * ? *)"
}

variable "notification_email" {
  description = "Creates an SNS topic with this e-mail subscription (confirm it from the e-mail): the alarms notify it and the function publishes its rotation events to it. Null: no topic."
  type        = string
  default     = null
}

variable "notification_events" {
  description = "Which rotation events the function publishes to the topic: all, failures or successes."
  type        = string
  default     = "failures"
  validation {
    condition     = contains(["all", "failures", "successes"], var.notification_events)
    error_message = "notification_events must be all, failures or successes."
  }
}

variable "metrics_namespace" {
  description = "CloudWatch namespace of the function's metrics (KEYROLL_METRICS_NAMESPACE)."
  type        = string
  default     = "keyroll"
}

variable "http_allow_hosts" {
  description = "HTTP-engine secrets only: hosts the function may send requests to (names, *.example.com, IP addresses). Empty: HTTP secrets are refused (KEYROLL_HTTP_ALLOW_HOSTS)."
  type        = list(string)
  default     = []
}

variable "http_allow_networks" {
  description = "HTTP-engine secrets only: CIDR networks whose non-public addresses (private, loopback, link-local) requests may reach. Empty: none (KEYROLL_HTTP_ALLOW_NETWORKS)."
  type        = list(string)
  default     = []
}
