variable "subscription_id" {
  type        = string
  description = "Subscription for both resource groups."
  validation {
    condition     = can(regex("^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$", var.subscription_id))
    error_message = "subscription_id must be a lowercase GUID."
  }
}

variable "location" {
  type        = string
  description = "Azure region; it must offer the allowed confidential VM sizes."
  validation {
    condition     = can(regex("^[a-z]+[0-9]?$", var.location))
    error_message = "location must be a region name such as westeurope or eastus2."
  }
}

variable "owner_tag_key" {
  type        = string
  description = "Tag key that marks the orchestrator's VMs; the Azure Policy denies job VMs without it."
  default     = "cdvm-owner"
  validation {
    condition     = can(regex("^[a-z][a-z0-9_-]{0,62}$", var.owner_tag_key))
    error_message = "owner_tag_key: lowercase letters, digits, _ and -, starting with a letter, at most 63 characters."
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

variable "image_id" {
  type        = string
  description = "The guest image: an Azure Compute Gallery image version (confidential VMs cannot boot managed images) marked ConfidentialVMSupported. Re-apply to roll to a new version."
  validation {
    condition     = can(regex("^/subscriptions/[0-9a-f-]{36}/resourceGroups/[^/]+/providers/Microsoft\\.Compute/galleries/[^/]+/images/[^/]+/versions/[0-9]+\\.[0-9]+\\.[0-9]+$", var.image_id))
    error_message = "image_id must be a gallery image version id (/subscriptions/…/galleries/G/images/I/versions/1.2.3)."
  }
}

variable "allowed_vm_sizes" {
  type        = list(string)
  description = "Confidential VM sizes job VMs may use: DCasv5/ECasv5 (SEV-SNP), DCesv5 (TDX), NCCadsH100v5 (H100)."
  default     = ["Standard_DC2as_v5", "Standard_DC4as_v5", "Standard_EC2as_v5", "Standard_DC2es_v5", "Standard_NCC40ads_H100_v5"]
  validation {
    condition     = length(var.allowed_vm_sizes) > 0 && alltrue([for s in var.allowed_vm_sizes : can(regex("^Standard_((DC|EC)[0-9]+as_v5|DC[0-9]+es_v5|NCC40ads_H100_v5)$", s))])
    error_message = "allowed_vm_sizes: one or more Standard_DC*as_v5, Standard_EC*as_v5, Standard_DC*es_v5 or Standard_NCC40ads_H100_v5."
  }
}

variable "vnet_cidr" {
  type        = string
  description = "CIDR of the job VNet; the job subnet is its first /24."
  default     = "10.82.0.0/16"
  validation {
    condition     = can(cidrnetmask(var.vnet_cidr)) && tonumber(split("/", var.vnet_cidr)[1]) <= 24
    error_message = "vnet_cidr must be an IPv4 CIDR of /24 or larger."
  }
}

variable "extra_tags" {
  type        = map(string)
  description = "Tags added to every taggable resource (the owner tag always wins)."
  default     = {}
  validation {
    condition     = length(var.extra_tags) <= 40
    error_message = "extra_tags: at most 40 (Azure allows 50 per resource)."
  }
}
