# The orchestrator's service account and two custom roles.
#
# What GCP IAM can and cannot condition (said plainly):
#  - IAM Conditions cannot test labels: labels are not a condition attribute (only Resource
#    Manager tags are, and a VM being created has none yet). The owner label is therefore put on
#    by the orchestrator and used by its reconciler, but not enforced by IAM.
#  - IAM cannot restrict machine type or confidential settings: the orchestrator refuses anything
#    outside allowed_machine_types before calling GCP, and attestation proves the TEE to users.
#  - IAM Conditions can test resource names, so create/delete/get are granted only on instances
#    (and their boot disks, which take the instance's name) whose name starts with
#    instance_name_prefix in the one zone, and subnetwork use only on the job subnetwork.
#  - Listing instances and reading zone operations are checked on the project/zone, not on a
#    named instance, so a name condition would deny them: they are in a second, read-only role.
# Job VMs get no service account, so no iam.serviceAccountUser grant exists and no Google
# credentials reach a guest.

resource "google_service_account" "orchestrator" {
  account_id   = var.orchestrator_account_id
  display_name = "ConfidentialDVM orchestrator (${var.owner_label})"
  description  = "Creates and deletes its own confidential job VMs; nothing else."
}

resource "google_project_iam_custom_role" "launcher" {
  role_id     = "cdvm_${replace(var.owner_label, "-", "_")}_launcher"
  title       = "ConfidentialDVM launcher (${var.owner_label})"
  description = "Create, read and delete job VMs; granted only under a resource-name condition."
  permissions = [
    "compute.instances.create",
    "compute.instances.delete",
    "compute.instances.get",
    "compute.instances.setMetadata", # the bootstrap travels in instance metadata
    "compute.instances.setLabels",   # owner and job labels at creation
    "compute.disks.create",          # the boot disk created with the instance
    "compute.disks.delete",          # the boot disk auto-deleted with the instance
    "compute.subnetworks.use",       # attach the NIC to the job subnetwork (no external IP)
  ]
}

resource "google_project_iam_custom_role" "observer" {
  role_id     = "cdvm_${replace(var.owner_label, "-", "_")}_observer"
  title       = "ConfidentialDVM observer (${var.owner_label})"
  description = "List instances (reconciler) and poll zone operations; read-only."
  permissions = [
    "compute.instances.list",
    "compute.zoneOperations.get",
  ]
}

locals {
  zone_path   = "projects/${var.project}/zones/${var.zone}"
  subnet_path = "projects/${var.project}/regions/${local.region}/subnetworks/${google_compute_subnetwork.jobs.name}"
  launcher_condition = join(" || ", [
    "(resource.type == \"compute.googleapis.com/Instance\" && resource.name.startsWith(\"${local.zone_path}/instances/${local.instance_name_prefix}\"))",
    "(resource.type == \"compute.googleapis.com/Disk\" && resource.name.startsWith(\"${local.zone_path}/disks/${local.instance_name_prefix}\"))",
    "(resource.type == \"compute.googleapis.com/Subnetwork\" && resource.name == \"${local.subnet_path}\")",
  ])
}

resource "google_project_iam_member" "launcher" {
  project = var.project
  role    = google_project_iam_custom_role.launcher.name
  member  = "serviceAccount:${google_service_account.orchestrator.email}"
  condition {
    title       = "cdvm-job-vms-only"
    description = "Only job VMs (and their boot disks) named with the prefix, in the one zone, on the job subnetwork."
    expression  = local.launcher_condition
  }
}

resource "google_project_iam_member" "observer" {
  project = var.project
  role    = google_project_iam_custom_role.observer.name
  member  = "serviceAccount:${google_service_account.orchestrator.email}"
}

# Booting the image needs compute.images.useReadOnly on that one image, granted on the image
# itself (it may live in another project), not project-wide.
resource "google_compute_image_iam_member" "guest_image" {
  project = var.image_project
  image   = var.image_name
  role    = "roles/compute.imageUser"
  member  = "serviceAccount:${google_service_account.orchestrator.email}"
}
