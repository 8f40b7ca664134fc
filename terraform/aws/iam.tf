# The orchestrator's role. It can launch only the allowed SNP instance types, only from the one
# AMI, only into the job subnet and security group, only with IMDSv2 required and the owner tag
# set; it can terminate only instances that carry the owner tag. Job VMs get no instance profile:
# without iam:PassRole a launch that names one is refused, so no AWS credentials reach a guest.
#
# Not expressible in IAM, so enforced by the orchestrator (and proven to users by attestation):
# CpuOptions.AmdSevSnp=enabled has no condition key.

data "aws_iam_policy_document" "assume" {
  statement {
    sid     = "OrchestratorAssumesRole"
    actions = ["sts:AssumeRole"]
    principals {
      type        = "AWS"
      identifiers = var.orchestrator_principal_arns
    }
  }
}

resource "aws_iam_role" "orchestrator" {
  name                 = "${local.name}-orchestrator"
  description          = "ConfidentialDVM orchestrator: launch/terminate its own SEV-SNP job VMs"
  assume_role_policy   = data.aws_iam_policy_document.assume.json
  max_session_duration = 3600
  tags                 = local.tags
}

data "aws_iam_policy_document" "orchestrator" {
  # RunInstances is authorised once per resource it touches; each statement below covers one kind.
  statement {
    sid       = "RunOnlyOwnedAllowedTypesWithImdsV2"
    actions   = ["ec2:RunInstances"]
    resources = ["${local.ec2_arn}:instance/*"]
    condition {
      test     = "StringEquals"
      variable = "aws:RequestTag/${var.owner_tag_key}"
      values   = [var.owner_tag]
    }
    condition {
      test     = "StringEquals"
      variable = "ec2:InstanceType"
      values   = var.allowed_instance_types
    }
    condition {
      test     = "StringEquals"
      variable = "ec2:MetadataHttpTokens"
      values   = ["required"]
    }
  }

  statement {
    sid       = "RunOnlyTheGuestImage"
    actions   = ["ec2:RunInstances"]
    resources = ["arn:${data.aws_partition.current.partition}:ec2:${var.region}::image/${var.ami_id}"]
  }

  statement {
    sid       = "RunOnlyInTheJobNetwork"
    actions   = ["ec2:RunInstances"]
    resources = ["${local.ec2_arn}:subnet/${aws_subnet.jobs.id}", "${local.ec2_arn}:security-group/${aws_security_group.jobs.id}"]
  }

  # The root volume and the network interface are created by the launch itself; they are bound
  # to the instance above (and terminated with it), so they need no conditions of their own.
  statement {
    sid       = "RunCreatesVolumeAndInterface"
    actions   = ["ec2:RunInstances"]
    resources = ["${local.ec2_arn}:volume/*", "${local.ec2_arn}:network-interface/*"]
  }

  # Tags can be written only as part of a launch, never onto an existing resource, so the role
  # cannot adopt (and then terminate) someone else's instance by tagging it.
  statement {
    sid       = "TagOnlyAtLaunch"
    actions   = ["ec2:CreateTags"]
    resources = ["${local.ec2_arn}:instance/*", "${local.ec2_arn}:volume/*", "${local.ec2_arn}:network-interface/*"]
    condition {
      test     = "StringEquals"
      variable = "ec2:CreateAction"
      values   = ["RunInstances"]
    }
  }

  statement {
    sid       = "TerminateOnlyOwned"
    actions   = ["ec2:TerminateInstances"]
    resources = ["${local.ec2_arn}:instance/*"]
    condition {
      test     = "StringEquals"
      variable = "ec2:ResourceTag/${var.owner_tag_key}"
      values   = [var.owner_tag]
    }
  }

  # EC2 Describe* actions support no resource-level permissions and no ec2:ResourceTag condition
  # (a tag condition here would deny every call), so they need Resource "*". Read-only; the
  # orchestrator filters by the owner tag itself. Limited to the one region.
  statement {
    sid       = "DescribeHasNoResourceLevelPermissions"
    actions   = ["ec2:DescribeInstances", "ec2:DescribeInstanceStatus"]
    resources = ["*"]
    condition {
      test     = "StringEquals"
      variable = "aws:RequestedRegion"
      values   = [var.region]
    }
  }
}

resource "aws_iam_role_policy" "orchestrator" {
  name   = "launch-own-snp-vms"
  role   = aws_iam_role.orchestrator.id
  policy = data.aws_iam_policy_document.orchestrator.json
}
