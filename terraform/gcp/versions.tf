# Applied once by an operator, with their own (admin) credentials; the orchestrator itself never
# runs Terraform. Only statically checked here (scripts/check-terraform): never planned or applied.
terraform {
  required_version = ">= 1.5.0"
  required_providers {
    google = {
      source  = "hashicorp/google"
      version = ">= 5.0, < 8.0"
    }
  }
}

# None of the resources below (network, subnetwork, firewall, router, NAT, service account,
# IAM) takes labels in GCP; default_labels puts the owner label on any that ever does.
provider "google" {
  project        = var.project
  region         = local.region
  default_labels = local.labels
}

locals {
  region = regex("^(.+)-[a-z]$", var.zone)[0]
  name   = "cdvm-${var.owner_label}"
  # The owner label goes last so extra_labels can never override it.
  labels = merge(var.extra_labels, { (var.owner_label_key) = var.owner_label })
  image  = "projects/${var.image_project}/global/images/${var.image_name}"

  # The only thing separating two orchestrators' VMs in one project (IAM cannot test labels).
  instance_name_prefix = var.instance_name_prefix != "" ? var.instance_name_prefix : "${local.name}-"
}
