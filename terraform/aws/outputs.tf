# One output per key of the orchestrator's `provider: { aws: … }` section, same names
# (terraform/config-keys.yaml; checked by scripts/terraform_structure.py).

output "region" {
  description = "Region of the job network."
  value       = var.region
}

output "subnet_id" {
  description = "Private subnet job VMs are launched into."
  value       = aws_subnet.jobs.id
}

output "security_group_id" {
  description = "Security group for job VMs: no inbound, outbound TCP 443 only."
  value       = aws_security_group.jobs.id
}

output "ami_id" {
  description = "The guest image the role may launch."
  value       = var.ami_id
}

output "role_arn" {
  description = "Role the orchestrator assumes to launch and terminate job VMs."
  value       = aws_iam_role.orchestrator.arn
}

output "owner_tag_key" {
  description = "Tag key the role's conditions check."
  value       = var.owner_tag_key
}

output "owner_tag" {
  description = "Owner tag value; must equal the orchestrator's top-level owner_tag."
  value       = var.owner_tag
}

output "allowed_instance_types" {
  description = "SEV-SNP instance types the role may launch."
  value       = var.allowed_instance_types
}
