variable "region" {
  type        = string
  description = "AWS region for the job network. SEV-SNP instances are offered in few regions (us-east-2 and eu-west-1 when this was written): check before choosing."
  validation {
    condition     = can(regex("^[a-z]{2}(-gov)?-[a-z]+-[0-9]$", var.region))
    error_message = "region must look like us-east-2."
  }
}

variable "availability_zone" {
  type        = string
  description = "Availability zone of the job subnet; it must offer the allowed instance types with SEV-SNP."
  validation {
    condition     = can(regex("^[a-z]{2}(-gov)?-[a-z]+-[0-9][a-z]$", var.availability_zone))
    error_message = "availability_zone must look like us-east-2a."
  }
}

variable "owner_tag_key" {
  type        = string
  description = "Tag key that marks the orchestrator's VMs; the role may only launch and terminate instances carrying it."
  default     = "cdvm-owner"
  validation {
    condition     = can(regex("^[a-z][a-z0-9_-]{0,62}$", var.owner_tag_key))
    error_message = "owner_tag_key: lowercase letters, digits, _ and -, starting with a letter, at most 63 characters (valid as an AWS, GCP and Azure key alike)."
  }
}

variable "owner_tag" {
  type        = string
  description = "The orchestrator's owner_tag (top-level key of its config): the value of the owner tag on every job VM."
  validation {
    condition     = can(regex("^[a-z0-9][a-z0-9_-]{0,39}$", var.owner_tag))
    error_message = "owner_tag: lowercase letters, digits, _ and -, at most 40 characters (it is part of resource names)."
  }
}

variable "ami_id" {
  type        = string
  description = "The guest image (a UEFI AMI with SEV-SNP support) the orchestrator may launch. Re-apply to roll to a new image."
  validation {
    condition     = can(regex("^ami-[0-9a-f]{8}([0-9a-f]{9})?$", var.ami_id))
    error_message = "ami_id must look like ami-0123456789abcdef0."
  }
}

variable "allowed_instance_types" {
  type        = list(string)
  description = "Instance types the orchestrator may launch: AWS offers SEV-SNP only on the m6a, c6a and r6a families."
  default     = ["m6a.large", "m6a.xlarge", "m6a.2xlarge", "c6a.large", "c6a.xlarge", "c6a.2xlarge", "r6a.large", "r6a.xlarge", "r6a.2xlarge"]
  validation {
    condition     = length(var.allowed_instance_types) > 0 && alltrue([for t in var.allowed_instance_types : can(regex("^(m6a|c6a|r6a)\\.([0-9]*xlarge|large)$", t))])
    error_message = "allowed_instance_types: one or more m6a/c6a/r6a sizes (the SEV-SNP families)."
  }
}

variable "orchestrator_principal_arns" {
  type        = list(string)
  description = "IAM principals allowed to assume the orchestrator's role: the role of the host the orchestrator runs on, or a dedicated user."
  validation {
    condition     = length(var.orchestrator_principal_arns) > 0 && alltrue([for a in var.orchestrator_principal_arns : can(regex("^arn:aws(-[a-z]+)*:iam::[0-9]{12}:(role|user)/[A-Za-z0-9+=,.@_/-]+$", a))])
    error_message = "orchestrator_principal_arns: one or more IAM role or user ARNs (not an account root, not *)."
  }
}

variable "vpc_cidr" {
  type        = string
  description = "CIDR of the job VPC."
  default     = "10.80.0.0/16"
  validation {
    condition     = can(cidrnetmask(var.vpc_cidr)) && tonumber(split("/", var.vpc_cidr)[1]) <= 22
    error_message = "vpc_cidr must be an IPv4 CIDR of /22 or larger (two /24s are cut from it)."
  }
}

variable "extra_tags" {
  type        = map(string)
  description = "Tags added to every resource (the owner tag always wins)."
  default     = {}
  validation {
    condition     = alltrue([for k in keys(var.extra_tags) : !startswith(lower(k), "aws:")])
    error_message = "extra_tags: keys starting with aws: are reserved."
  }
}
