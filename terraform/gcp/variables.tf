variable "project" {
  type        = string
  description = "Project for the job network and job VMs. A dedicated project is best: IAM below is project-wide where GCP offers nothing narrower."
  validation {
    condition     = can(regex("^[a-z][-a-z0-9]{4,28}[a-z0-9]$", var.project))
    error_message = "project must be a GCP project id."
  }
}

variable "zone" {
  type        = string
  description = "Zone job VMs are created in; it must offer the allowed confidential machine types."
  validation {
    condition     = can(regex("^[a-z]+-[a-z]+[0-9]+-[a-z]$", var.zone))
    error_message = "zone must look like us-central1-a."
  }
}

variable "owner_label_key" {
  type        = string
  description = "Label key that marks the orchestrator's VMs."
  default     = "cdvm-owner"
  validation {
    condition     = can(regex("^[a-z][a-z0-9_-]{0,62}$", var.owner_label_key))
    error_message = "owner_label_key: lowercase letters, digits, _ and -, starting with a letter, at most 63 characters."
  }
}

variable "owner_label" {
  type        = string
  description = "The orchestrator's owner_tag (top-level key of its config): the owner label value on every job VM."
  validation {
    condition     = can(regex("^[a-z0-9][a-z0-9_-]{0,22}$", var.owner_label))
    error_message = "owner_label: lowercase letters, digits, _ and -, at most 23 characters (it is part of resource names)."
  }
}

variable "instance_name_prefix" {
  type        = string
  description = "Every job VM's name starts with this; the service account's create/delete rights are conditioned on it, so two orchestrators in one project need different prefixes. Empty: cdvm-<owner_label>-."
  default     = ""
  validation {
    condition     = var.instance_name_prefix == "" || can(regex("^[a-z][-a-z0-9]{0,30}-$", var.instance_name_prefix))
    error_message = "instance_name_prefix: empty, or a lowercase letter, then letters, digits or -, ending in -, at most 32 characters."
  }
}

variable "image_project" {
  type        = string
  description = "Project holding the guest image."
  validation {
    condition     = can(regex("^[a-z][-a-z0-9]{4,28}[a-z0-9]$", var.image_project))
    error_message = "image_project must be a GCP project id."
  }
}

variable "image_name" {
  type        = string
  description = "The guest image (UEFI, SEV_SNP_CAPABLE / TDX_CAPABLE guest OS features) the service account may boot. Re-apply to roll to a new image."
  validation {
    condition     = can(regex("^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$", var.image_name))
    error_message = "image_name must be a GCE image name."
  }
}

variable "allowed_machine_types" {
  type        = list(string)
  description = "Machine types the orchestrator may request: n2d (SEV-SNP, min CPU platform AMD Milan), c3 (TDX), a3 (confidential H100). GCP IAM cannot restrict machine types: the orchestrator enforces this list."
  default     = ["n2d-standard-2", "n2d-standard-4", "c3-standard-4", "a3-highgpu-1g"]
  validation {
    condition     = length(var.allowed_machine_types) > 0 && alltrue([for t in var.allowed_machine_types : can(regex("^(n2d|c3|a3)-[a-z]+-[0-9]+g?$", t))])
    error_message = "allowed_machine_types: one or more n2d-, c3- or a3- machine types."
  }
}

variable "orchestrator_account_id" {
  type        = string
  description = "Account id (the part before @) of the orchestrator's service account."
  default     = "cdvm-orchestrator"
  validation {
    condition     = can(regex("^[a-z][-a-z0-9]{4,28}[a-z0-9]$", var.orchestrator_account_id))
    error_message = "orchestrator_account_id: 6 to 30 lowercase letters, digits or -, starting with a letter."
  }
}

variable "subnet_cidr" {
  type        = string
  description = "CIDR of the job subnetwork."
  default     = "10.81.0.0/24"
  validation {
    condition     = can(cidrnetmask(var.subnet_cidr))
    error_message = "subnet_cidr must be an IPv4 CIDR."
  }
}

variable "extra_labels" {
  type        = map(string)
  description = "Labels added to every labelable resource (the owner label always wins)."
  default     = {}
  validation {
    condition     = alltrue([for k, v in var.extra_labels : can(regex("^[a-z][a-z0-9_-]{0,62}$", k)) && can(regex("^[a-z0-9_-]{0,63}$", v))])
    error_message = "extra_labels: GCP label keys and values (lowercase letters, digits, _ and -)."
  }
}
