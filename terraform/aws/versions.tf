# Applied once by an operator, with their own (admin) credentials; the orchestrator itself never
# runs Terraform. Only statically checked here (scripts/check-terraform): never planned or applied.
terraform {
  required_version = ">= 1.5.0"
  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = ">= 5.0, < 7.0"
    }
  }
}

provider "aws" {
  region = var.region
}

data "aws_partition" "current" {}
data "aws_caller_identity" "current" {}

locals {
  name = "cdvm-${var.owner_tag}"
  # The owner tag goes last so extra_tags can never override it.
  tags = merge(var.extra_tags, { (var.owner_tag_key) = var.owner_tag })

  # ARN prefixes for the IAM policy (iam.tf).
  ec2_arn = "arn:${data.aws_partition.current.partition}:ec2:${var.region}:${data.aws_caller_identity.current.account_id}"
}
