# Two resource groups: "base" holds what the orchestrator must not change (VNet, NSG, NAT, its own
# identity); "jobs" holds only job VMs, their NICs and disks, and is the only scope the
# orchestrator can write to.
#
# Job VMs have no public IP and reach the internet only on TCP 443 (Nostr relays over wss, AMD
# KDS, Intel PCS, NVIDIA attestation) through a NAT gateway. DNS needs no rule: Azure DNS and IMDS
# (168.63.129.16, 169.254.169.254: name resolution, userData bootstrap, the paravisor's
# certificate endpoint) are platform traffic that NSG rules do not apply to unless they name the
# AzurePlatformDNS / AzurePlatformIMDS service tags.

resource "azurerm_resource_group" "base" {
  name     = "${local.name}-base"
  location = var.location
  tags     = local.tags
}

resource "azurerm_resource_group" "jobs" {
  name     = "${local.name}-jobs"
  location = var.location
  tags     = local.tags
}

resource "azurerm_virtual_network" "jobs" {
  name                = "${local.name}-jobs"
  resource_group_name = azurerm_resource_group.base.name
  location            = var.location
  address_space       = [var.vnet_cidr]
  tags                = local.tags
}

resource "azurerm_subnet" "jobs" {
  name                 = "jobs"
  resource_group_name  = azurerm_resource_group.base.name
  virtual_network_name = azurerm_virtual_network.jobs.name
  address_prefixes     = [cidrsubnet(var.vnet_cidr, 24 - tonumber(split("/", var.vnet_cidr)[1]), 0)]
  # Egress only through the NAT gateway below, never Azure's implicit default outbound access.
  default_outbound_access_enabled = false
}

# Deny by default. Azure's built-in rules (priority 65000+) allow VNet-to-VNet traffic both ways
# and all outbound to the Internet, so both directions end in an explicit deny-all that
# overrides them; the only allow is outbound TCP 443.
resource "azurerm_network_security_group" "jobs" {
  name                = "${local.name}-jobs"
  resource_group_name = azurerm_resource_group.base.name
  location            = var.location
  tags                = local.tags

  security_rule {
    name                       = "allow-https-out"
    description                = "wss relays, KDS/PCS"
    priority                   = 100
    direction                  = "Outbound"
    access                     = "Allow"
    protocol                   = "Tcp"
    source_port_range          = "*"
    destination_port_range     = "443"
    source_address_prefix      = "VirtualNetwork"
    destination_address_prefix = "Internet"
  }

  security_rule {
    name                       = "deny-all-out"
    priority                   = 4096
    direction                  = "Outbound"
    access                     = "Deny"
    protocol                   = "*"
    source_port_range          = "*"
    destination_port_range     = "*"
    source_address_prefix      = "*"
    destination_address_prefix = "*"
  }

  security_rule {
    name                       = "deny-all-in"
    priority                   = 4096
    direction                  = "Inbound"
    access                     = "Deny"
    protocol                   = "*"
    source_port_range          = "*"
    destination_port_range     = "*"
    source_address_prefix      = "*"
    destination_address_prefix = "*"
  }
}

resource "azurerm_subnet_network_security_group_association" "jobs" {
  subnet_id                 = azurerm_subnet.jobs.id
  network_security_group_id = azurerm_network_security_group.jobs.id
}

resource "azurerm_public_ip" "nat" {
  name                = "${local.name}-nat"
  resource_group_name = azurerm_resource_group.base.name
  location            = var.location
  allocation_method   = "Static"
  sku                 = "Standard"
  tags                = local.tags
}

resource "azurerm_nat_gateway" "jobs" {
  name                = "${local.name}-jobs"
  resource_group_name = azurerm_resource_group.base.name
  location            = var.location
  sku_name            = "Standard"
  tags                = local.tags
}

resource "azurerm_nat_gateway_public_ip_association" "jobs" {
  nat_gateway_id       = azurerm_nat_gateway.jobs.id
  public_ip_address_id = azurerm_public_ip.nat.id
}

resource "azurerm_subnet_nat_gateway_association" "jobs" {
  subnet_id      = azurerm_subnet.jobs.id
  nat_gateway_id = azurerm_nat_gateway.jobs.id
}
