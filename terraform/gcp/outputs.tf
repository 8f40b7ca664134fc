# One output per key of the orchestrator's `provider: { gcp: … }` section, same names
# (terraform/config-keys.yaml; checked by scripts/terraform_structure.py).

output "project" {
  description = "Project of the job network and job VMs."
  value       = var.project
}

output "zone" {
  description = "Zone job VMs are created in."
  value       = var.zone
}

output "network" {
  description = "Job VPC network self link."
  value       = google_compute_network.jobs.self_link
}

output "subnetwork" {
  description = "Job subnetwork self link (no external IPs; egress via Cloud NAT, TCP 443 only)."
  value       = google_compute_subnetwork.jobs.self_link
}

output "service_account_email" {
  description = "The orchestrator's service account: attach it to the orchestrator's host or impersonate it."
  value       = google_service_account.orchestrator.email
}

output "image" {
  description = "The guest image the service account may boot."
  value       = local.image
}

output "instance_name_prefix" {
  description = "Job VM names must start with this (IAM condition)."
  value       = local.instance_name_prefix
}

output "owner_label_key" {
  description = "Owner label key."
  value       = var.owner_label_key
}

output "owner_label" {
  description = "Owner label value; must equal the orchestrator's top-level owner_tag."
  value       = var.owner_label
}

output "allowed_machine_types" {
  description = "Confidential machine types the orchestrator may request (enforced by the orchestrator; GCP IAM cannot)."
  value       = var.allowed_machine_types
}
