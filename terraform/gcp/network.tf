# The job network: one subnetwork, no external IPs, egress through Cloud NAT, and firewall rules
# that allow only TCP 443 out (Nostr relays over wss, AMD KDS, Intel PCS, NVIDIA attestation).
#
# GCP's implied rules deny all ingress and allow all egress; no ingress rule is added, and the
# implied egress allow is overridden by an explicit deny below the 443 allow. DNS needs no rule:
# the metadata server (169.254.169.254: DNS, NTP and the instance metadata holding the bootstrap)
# is always reachable and is not subject to VPC firewall rules.

resource "google_compute_network" "jobs" {
  name                    = "${local.name}-jobs"
  description             = "ConfidentialDVM job VMs (owner ${var.owner_label})"
  auto_create_subnetworks = false
  routing_mode            = "REGIONAL"
}

resource "google_compute_subnetwork" "jobs" {
  name          = "${local.name}-jobs"
  description   = "ConfidentialDVM job VMs (owner ${var.owner_label})"
  region        = local.region
  network       = google_compute_network.jobs.id
  ip_cidr_range = var.subnet_cidr
  # Reach Google APIs without external IPs (still over 443).
  private_ip_google_access = true

  # Flow logs are one block here (no extra sink): sampled, so cheap; they show where job VMs
  # connected, never what they sent.
  log_config {
    aggregation_interval = "INTERVAL_5_MIN"
    flow_sampling        = 0.5
    metadata             = "INCLUDE_ALL_METADATA"
  }
}

resource "google_compute_router" "jobs" {
  name    = "${local.name}-jobs"
  region  = local.region
  network = google_compute_network.jobs.id
}

resource "google_compute_router_nat" "jobs" {
  name                               = "${local.name}-jobs"
  region                             = local.region
  router                             = google_compute_router.jobs.name
  nat_ip_allocate_option             = "AUTO_ONLY"
  source_subnetwork_ip_ranges_to_nat = "LIST_OF_SUBNETWORKS"
  subnetwork {
    name                    = google_compute_subnetwork.jobs.id
    source_ip_ranges_to_nat = ["ALL_IP_RANGES"]
  }
  log_config {
    enable = true
    filter = "ERRORS_ONLY"
  }
}

resource "google_compute_firewall" "egress_https" {
  name               = "${local.name}-egress-https"
  description        = "Job VMs: outbound TCP 443 only (relays, KDS/PCS)"
  network            = google_compute_network.jobs.id
  direction          = "EGRESS"
  priority           = 1000
  destination_ranges = ["0.0.0.0/0"]
  allow {
    protocol = "tcp"
    ports    = ["443"]
  }
  log_config {
    metadata = "INCLUDE_ALL_METADATA"
  }
}

# Overrides the implied allow-all egress (priority 65535).
resource "google_compute_firewall" "egress_deny_all" {
  name               = "${local.name}-egress-deny-all"
  description        = "Job VMs: everything else outbound is denied"
  network            = google_compute_network.jobs.id
  direction          = "EGRESS"
  priority           = 65534
  destination_ranges = ["0.0.0.0/0"]
  deny {
    protocol = "all"
  }
  log_config {
    metadata = "INCLUDE_ALL_METADATA"
  }
}
