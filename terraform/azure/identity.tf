# The orchestrator's user-assigned identity and its rights:
#  - a custom role on the jobs resource group only: VMs, NICs and disks (read, write, delete) and
#    reading async operations — nothing else, and nowhere else;
#  - joining the one job subnet (a custom role assigned at the subnet, not the VNet);
#  - Reader on the one guest image version.
# Not granted, on purpose: public IPs, NSGs (so no NIC can get its own, looser NSG), identity
# assignment (job VMs get no managed identity, so no Azure credentials reach a guest).
# Azure RBAC cannot condition compute writes on tags, size or image (ABAC conditions exist only
# for storage): the Azure Policy in policy.tf denies job VMs outside those.

resource "azurerm_user_assigned_identity" "orchestrator" {
  name                = "${local.name}-orchestrator"
  resource_group_name = azurerm_resource_group.base.name
  location            = var.location
  tags                = local.tags
}

resource "azurerm_role_definition" "jobs" {
  name        = "${local.name}-job-vms"
  scope       = azurerm_resource_group.jobs.id
  description = "ConfidentialDVM orchestrator: create, read and delete job VMs with their NICs and disks."
  permissions {
    actions = [
      "Microsoft.Compute/virtualMachines/read",
      "Microsoft.Compute/virtualMachines/write",
      "Microsoft.Compute/virtualMachines/delete",
      "Microsoft.Compute/virtualMachines/instanceView/read", # power state
      "Microsoft.Compute/disks/read",
      "Microsoft.Compute/disks/write", # OS disk created with the VM (deleteOption=Delete)
      "Microsoft.Compute/disks/delete",
      "Microsoft.Network/networkInterfaces/read",
      "Microsoft.Network/networkInterfaces/write",
      "Microsoft.Network/networkInterfaces/delete",
      "Microsoft.Network/networkInterfaces/join/action", # attach the NIC to the VM
      "Microsoft.Compute/locations/operations/read",     # poll Azure-AsyncOperation
      "Microsoft.Network/locations/operations/read",
      "Microsoft.Network/locations/operationResults/read",
    ]
    not_actions = []
  }
  assignable_scopes = [azurerm_resource_group.jobs.id]
}

resource "azurerm_role_assignment" "jobs" {
  scope              = azurerm_resource_group.jobs.id
  role_definition_id = azurerm_role_definition.jobs.role_definition_resource_id
  principal_id       = azurerm_user_assigned_identity.orchestrator.principal_id
  principal_type     = "ServicePrincipal"
}

# Custom roles cannot have a single resource as assignable scope, so this one is defined on the
# base group and assigned only at the subnet.
resource "azurerm_role_definition" "subnet_join" {
  name        = "${local.name}-subnet-join"
  scope       = azurerm_resource_group.base.id
  description = "ConfidentialDVM orchestrator: put job NICs in the job subnet."
  permissions {
    actions = [
      "Microsoft.Network/virtualNetworks/subnets/read",
      "Microsoft.Network/virtualNetworks/subnets/join/action",
    ]
    not_actions = []
  }
  assignable_scopes = [azurerm_resource_group.base.id]
}

resource "azurerm_role_assignment" "subnet_join" {
  scope              = azurerm_subnet.jobs.id
  role_definition_id = azurerm_role_definition.subnet_join.role_definition_resource_id
  principal_id       = azurerm_user_assigned_identity.orchestrator.principal_id
  principal_type     = "ServicePrincipal"
}

resource "azurerm_role_assignment" "image_reader" {
  scope                = var.image_id
  role_definition_name = "Reader"
  principal_id         = azurerm_user_assigned_identity.orchestrator.principal_id
  principal_type       = "ServicePrincipal"
}
