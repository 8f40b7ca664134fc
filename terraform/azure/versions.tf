# Applied once by an operator, with their own (Owner) credentials; the orchestrator itself never
# runs Terraform. Only statically checked here (scripts/check-terraform): never planned or applied.
terraform {
  required_version = ">= 1.5.0"
  required_providers {
    azurerm = {
      source  = "hashicorp/azurerm"
      version = ">= 4.0, < 5.0"
    }
  }
}

provider "azurerm" {
  subscription_id = var.subscription_id
  features {}
}

locals {
  name = "cdvm-${var.owner_tag}"
  # The owner tag goes last so extra_tags can never override it.
  tags = merge(var.extra_tags, { (var.owner_tag_key) = var.owner_tag })
}
