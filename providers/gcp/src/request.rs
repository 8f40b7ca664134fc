//! The `instances.insert` body of a job VM, and reading our tags back from an instance.

use cdvm_provider_api::metadata::GCE_BOOTSTRAP_KEY;
use cdvm_provider_api::{JobTag, OwnerTag, VmSpec};
use google_cloud_compute_v1::model::{
    attached_disk, confidential_instance_config, metadata, scheduling, AttachedDisk,
    AttachedDiskInitializeParams, ConfidentialInstanceConfig, Instance, Metadata, NetworkInterface,
    Scheduling, ShieldedInstanceConfig,
};

use crate::catalog::{MachineType, Tee};
use crate::config::GcpProviderConfig;
use crate::names;

/// Metadata key holding the exact owner tag (labels hold a sanitised copy).
pub const OWNER_METADATA_KEY: &str = "cdvm-owner";
/// Metadata key holding the exact job tag.
pub const JOB_METADATA_KEY: &str = "cdvm-job";
/// Label key of the (label-safe) job tag.
pub const JOB_LABEL_KEY: &str = "cdvm-job";

/// The instance resource for `spec` on machine type `machine`, named `name`.
pub fn instance(
    cfg: &GcpProviderConfig,
    spec: &VmSpec,
    machine: &MachineType,
    name: &str,
    bootstrap_json: String,
) -> Instance {
    let confidential_type = match machine.tee {
        Tee::SevSnp => confidential_instance_config::ConfidentialInstanceType::SevSnp,
        Tee::Tdx => confidential_instance_config::ConfidentialInstanceType::Tdx,
    };
    let boot_disk = AttachedDisk::new()
        .set_boot(true)
        .set_auto_delete(true)
        .set_type(attached_disk::Type::Persistent)
        .set_initialize_params(AttachedDiskInitializeParams::new().set_source_image(&cfg.image));
    // No access configs: no external IP; egress goes through the subnetwork's Cloud NAT.
    let nic = NetworkInterface::new()
        .set_network(&cfg.network)
        .set_subnetwork(&cfg.subnetwork);
    let item = |k: &str, v: String| metadata::Items::new().set_key(k).set_value(v);
    let mut vm = Instance::new()
        .set_name(name)
        .set_machine_type(format!("zones/{}/machineTypes/{}", cfg.zone, machine.name))
        .set_confidential_instance_config(
            ConfidentialInstanceConfig::new().set_confidential_instance_type(confidential_type),
        )
        // Confidential VMs cannot live-migrate; a terminated job VM stays down (the job is over).
        .set_scheduling(
            Scheduling::new()
                .set_on_host_maintenance(scheduling::OnHostMaintenance::Terminate)
                .set_automatic_restart(false),
        )
        .set_disks([boot_disk])
        .set_network_interfaces([nic])
        .set_shielded_instance_config(
            ShieldedInstanceConfig::new()
                .set_enable_secure_boot(true)
                .set_enable_vtpm(true)
                .set_enable_integrity_monitoring(true),
        )
        .set_labels([
            (
                cfg.owner_label_key.clone(),
                names::label_value(&spec.owner.0),
            ),
            (JOB_LABEL_KEY.to_string(), names::label_value(&spec.job.0)),
        ])
        .set_metadata(Metadata::new().set_items([
            item(GCE_BOOTSTRAP_KEY, bootstrap_json),
            item(OWNER_METADATA_KEY, spec.owner.0.clone()),
            item(JOB_METADATA_KEY, spec.job.0.clone()),
        ]));
    if machine.tee == Tee::SevSnp {
        // GCE runs SEV-SNP only on Milan hosts and insists on being told so.
        vm = vm.set_min_cpu_platform("AMD Milan");
    }
    vm
}

fn metadata_value<'a>(vm: &'a Instance, key: &str) -> Option<&'a str> {
    vm.metadata
        .as_ref()?
        .items
        .iter()
        .find(|i| i.key.as_deref() == Some(key))?
        .value
        .as_deref()
}

/// The exact owner and job tags the instance carries, if it is one of ours.
pub fn tags(vm: &Instance) -> Option<(OwnerTag, JobTag)> {
    Some((
        OwnerTag(metadata_value(vm, OWNER_METADATA_KEY)?.to_string()),
        JobTag(metadata_value(vm, JOB_METADATA_KEY)?.to_string()),
    ))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use cdvm_provider_api::conformance::sample_spec;

    fn cfg() -> GcpProviderConfig {
        GcpProviderConfig {
            project: "p".into(),
            zone: "europe-west4-a".into(),
            network: "projects/p/global/networks/jobs".into(),
            subnetwork: "projects/p/regions/europe-west4/subnetworks/jobs".into(),
            service_account_email: "orch@p.iam.gserviceaccount.com".into(),
            image: "projects/img/global/images/guest".into(),
            instance_name_prefix: "cdvm-o-".into(),
            owner_label_key: "cdvm-owner".into(),
            owner_label: "o".into(),
            allowed_machine_types: vec!["n2d-standard-2".into()],
            endpoint: None,
            retry: None,
        }
    }

    #[test]
    fn the_body_is_confidential_private_and_tagged() {
        let spec = sample_spec(&OwnerTag("Team A".into()), &JobTag("f".repeat(64)));
        let machine = crate::catalog::lookup("n2d-standard-2").expect("n2d");
        let vm = instance(&cfg(), &spec, &machine, "cdvm-o-1", "{}".into());
        let json = serde_json::to_value(&vm).expect("serialises");
        assert_eq!(
            json["confidentialInstanceConfig"]["confidentialInstanceType"],
            "SEV_SNP"
        );
        assert_eq!(json["minCpuPlatform"], "AMD Milan");
        assert_eq!(json["scheduling"]["onHostMaintenance"], "TERMINATE");
        assert_eq!(json["scheduling"]["automaticRestart"], false);
        assert_eq!(
            json["machineType"],
            "zones/europe-west4-a/machineTypes/n2d-standard-2"
        );
        assert!(json["networkInterfaces"][0].get("accessConfigs").is_none());
        assert!(json.get("serviceAccounts").is_none(), "{json}");
        assert_eq!(json["shieldedInstanceConfig"]["enableVtpm"], true);
        assert_eq!(json["labels"]["cdvm-owner"], "team-a");
        assert_eq!(json["labels"]["cdvm-job"].as_str().map(str::len), Some(63));
        assert_eq!(
            tags(&vm),
            Some((OwnerTag("Team A".into()), JobTag("f".repeat(64))))
        );

        let tdx = crate::catalog::lookup("c3-standard-4").expect("c3");
        let json = serde_json::to_value(instance(&cfg(), &spec, &tdx, "cdvm-o-2", "{}".into()))
            .expect("serialises");
        assert_eq!(
            json["confidentialInstanceConfig"]["confidentialInstanceType"],
            "TDX"
        );
        assert!(json.get("minCpuPlatform").is_none());
    }
}
