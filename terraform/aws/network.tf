# The job network: a private subnet whose VMs have no public address and no inbound rules, and
# reach the internet only on TCP 443 (Nostr relays over wss, AMD KDS for VLEK/VCEK certificates)
# through a NAT gateway.
#
# DNS needs no rule: security groups do not filter traffic to the Amazon-provided resolver
# (VPC base + 2 / 169.254.169.253), nor to IMDS (169.254.169.254, where the guest reads its
# bootstrap with IMDSv2) or the Time Sync Service (169.254.169.123). So 443 is the only egress.

resource "aws_vpc" "jobs" {
  #checkov:skip=CKV2_AWS_11:Flow logs need a log destination, a KMS key and a retention policy that are the account's own choice (often set centrally); docs/terraform.md asks operators to enable them rather than this module creating a second log sink.
  cidr_block           = var.vpc_cidr
  enable_dns_support   = true # relay hostnames resolve through the Amazon resolver
  enable_dns_hostnames = false
  tags                 = merge(local.tags, { Name = "${local.name}-jobs" })
}

# Adopting the default security group strips all its rules, so nothing launched without an
# explicit group gets the default's allow-from-itself ingress.
resource "aws_default_security_group" "jobs" {
  vpc_id = aws_vpc.jobs.id
  tags   = merge(local.tags, { Name = "${local.name}-default-unused" })
}

resource "aws_subnet" "jobs" {
  vpc_id                  = aws_vpc.jobs.id
  cidr_block              = cidrsubnet(var.vpc_cidr, 8, 1)
  availability_zone       = var.availability_zone
  map_public_ip_on_launch = false
  tags                    = merge(local.tags, { Name = "${local.name}-jobs" })

  lifecycle {
    precondition {
      condition     = startswith(var.availability_zone, var.region)
      error_message = "availability_zone must be in region."
    }
  }
}

# Holds only the NAT gateway; no instance is ever launched here (the role may only use the
# jobs subnet).
resource "aws_subnet" "nat" {
  vpc_id                  = aws_vpc.jobs.id
  cidr_block              = cidrsubnet(var.vpc_cidr, 8, 0)
  availability_zone       = var.availability_zone
  map_public_ip_on_launch = false
  tags                    = merge(local.tags, { Name = "${local.name}-nat" })
}

resource "aws_internet_gateway" "jobs" {
  vpc_id = aws_vpc.jobs.id
  tags   = merge(local.tags, { Name = "${local.name}" })
}

resource "aws_eip" "nat" {
  domain = "vpc"
  tags   = merge(local.tags, { Name = "${local.name}-nat" })
}

resource "aws_nat_gateway" "jobs" {
  allocation_id = aws_eip.nat.id
  subnet_id     = aws_subnet.nat.id
  tags          = merge(local.tags, { Name = "${local.name}" })
  depends_on    = [aws_internet_gateway.jobs]
}

resource "aws_route_table" "nat" {
  vpc_id = aws_vpc.jobs.id
  route {
    cidr_block = "0.0.0.0/0"
    gateway_id = aws_internet_gateway.jobs.id
  }
  tags = merge(local.tags, { Name = "${local.name}-nat" })
}

resource "aws_route_table_association" "nat" {
  subnet_id      = aws_subnet.nat.id
  route_table_id = aws_route_table.nat.id
}

resource "aws_route_table" "jobs" {
  vpc_id = aws_vpc.jobs.id
  route {
    cidr_block     = "0.0.0.0/0"
    nat_gateway_id = aws_nat_gateway.jobs.id
  }
  tags = merge(local.tags, { Name = "${local.name}-jobs" })
}

resource "aws_route_table_association" "jobs" {
  subnet_id      = aws_subnet.jobs.id
  route_table_id = aws_route_table.jobs.id
}

resource "aws_security_group" "jobs" {
  #checkov:skip=CKV2_AWS_5:Attached at launch time: the orchestrator names this group in RunInstances (the only group its role may use); no instance exists in this module.
  name        = "${local.name}-jobs"
  description = "ConfidentialDVM job VMs: no inbound, outbound TCP 443 only"
  vpc_id      = aws_vpc.jobs.id

  # Authoritative empty list: Terraform removes any inbound rule added out of band.
  ingress = []

  egress {
    description = "wss relays, AMD KDS"
    protocol    = "tcp"
    from_port   = 443
    to_port     = 443
    cidr_blocks = ["0.0.0.0/0"]
  }

  tags = merge(local.tags, { Name = "${local.name}-jobs" })
}
