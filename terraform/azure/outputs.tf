# One output per key of the orchestrator's `provider: { azure: … }` section, same names
# (terraform/config-keys.yaml; checked by scripts/terraform_structure.py).

output "subscription_id" {
  description = "Subscription of both resource groups."
  value       = var.subscription_id
}

output "location" {
  description = "Region of the VNet and the job VMs."
  value       = var.location
}

output "resource_group" {
  description = "The jobs resource group: the only scope the identity can write to."
  value       = azurerm_resource_group.jobs.name
}

output "subnet_id" {
  description = "Subnet job NICs are created in (no public IPs; egress via NAT gateway, TCP 443 only)."
  value       = azurerm_subnet.jobs.id
}

output "identity_client_id" {
  description = "Client id of the orchestrator's user-assigned identity (selects it in the managed identity credential)."
  value       = azurerm_user_assigned_identity.orchestrator.client_id
}

output "image_id" {
  description = "The gallery image version job VMs may boot."
  value       = var.image_id
}

output "owner_tag_key" {
  description = "Tag key the Azure Policy checks."
  value       = var.owner_tag_key
}

output "owner_tag" {
  description = "Owner tag value; must equal the orchestrator's top-level owner_tag."
  value       = var.owner_tag
}

output "allowed_vm_sizes" {
  description = "Confidential VM sizes the Azure Policy allows."
  value       = var.allowed_vm_sizes
}
