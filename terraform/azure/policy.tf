# What RBAC cannot say, Azure Policy enforces on the jobs resource group: a VM there is denied
# unless its size is allowed, it boots the guest image and it carries the owner tag. This binds
# the orchestrator (and anyone else writing to the group).

resource "azurerm_policy_definition" "job_vms" {
  name         = "${local.name}-job-vms"
  policy_type  = "Custom"
  mode         = "Indexed"
  display_name = "ConfidentialDVM job VMs (${var.owner_tag}): allowed sizes, guest image, owner tag"
  policy_rule = jsonencode({
    "if" = {
      allOf = [
        { field = "type", equals = "Microsoft.Compute/virtualMachines" },
        {
          anyOf = [
            { not = { field = "Microsoft.Compute/virtualMachines/sku.name", in = var.allowed_vm_sizes } },
            { not = { field = "Microsoft.Compute/imageId", equals = var.image_id } },
            { field = "tags['${var.owner_tag_key}']", notEquals = var.owner_tag },
          ]
        },
      ]
    }
    "then" = { effect = "deny" }
  })
}

resource "azurerm_resource_group_policy_assignment" "job_vms" {
  name                 = "${local.name}-job-vms"
  resource_group_id    = azurerm_resource_group.jobs.id
  policy_definition_id = azurerm_policy_definition.job_vms.id
  description          = "Deny job VMs outside the allowed sizes, image and owner tag."
}
