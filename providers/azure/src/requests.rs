//! The bodies of the two PUTs a launch makes: the job NIC and the confidential VM.

use std::collections::BTreeMap;

use base64::Engine;
use cdvm_provider_api::VmSpec;

use crate::config::AzureProviderConfig;
use crate::models::{
    DiskSecurityProfile, HardwareProfile, IpConfiguration, IpConfigurationProperties,
    LinuxConfiguration, ManagedDisk, NetworkInterface, NetworkInterfaceProperties,
    NetworkInterfaceReference, NetworkInterfaceReferenceProperties, NetworkProfile, OsDisk,
    OsProfile, SecurityProfile, SshConfiguration, SshPublicKey, StorageProfile, SubResource,
    UefiSettings, VirtualMachine, VirtualMachineProperties,
};
use crate::names::{authorized_keys_path, nobody_ssh_key, ADMIN_USERNAME};
use crate::sizes::VmSize;
use crate::JOB_TAG_KEY;

/// The owner and job tags every job resource carries.
pub fn tags(cfg: &AzureProviderConfig, spec: &VmSpec) -> BTreeMap<String, String> {
    BTreeMap::from([
        (cfg.owner_tag_key.clone(), spec.owner.0.clone()),
        (JOB_TAG_KEY.to_string(), spec.job.0.clone()),
    ])
}

/// The NIC: one dynamic private address in the job subnet, no public IP, no NSG of its own
/// (the subnet's applies).
pub fn nic(cfg: &AzureProviderConfig, spec: &VmSpec) -> NetworkInterface {
    NetworkInterface {
        location: cfg.location.clone(),
        tags: tags(cfg, spec),
        properties: NetworkInterfaceProperties {
            ip_configurations: vec![IpConfiguration {
                name: "ipconfig1".into(),
                properties: IpConfigurationProperties {
                    subnet: SubResource {
                        id: cfg.subnet_id.clone(),
                    },
                    private_ip_allocation_method: "Dynamic",
                    primary: true,
                },
            }],
        },
    }
}

/// The VM: a confidential VM (secure boot, vTPM, OS disk and guest state encrypted), the one
/// image, the NIC (deleted with the VM, as is the disk), no managed identity (no Azure
/// credentials reach the guest), no usable login, the bootstrap as user data.
pub fn vm(
    cfg: &AzureProviderConfig,
    spec: &VmSpec,
    size: &VmSize,
    name: &str,
    nic_id: &str,
) -> Result<VirtualMachine, serde_json::Error> {
    let bootstrap = serde_json::to_vec(&spec.bootstrap)?;
    Ok(VirtualMachine {
        location: cfg.location.clone(),
        tags: tags(cfg, spec),
        properties: VirtualMachineProperties {
            hardware_profile: HardwareProfile {
                vm_size: size.name.into(),
            },
            security_profile: SecurityProfile {
                security_type: "ConfidentialVM",
                uefi_settings: UefiSettings {
                    secure_boot_enabled: true,
                    vtpm_enabled: true,
                },
            },
            storage_profile: StorageProfile {
                image_reference: SubResource {
                    id: cfg.image_id.clone(),
                },
                os_disk: OsDisk {
                    create_option: "FromImage",
                    delete_option: "Delete",
                    managed_disk: ManagedDisk {
                        security_profile: DiskSecurityProfile {
                            security_encryption_type: "DiskWithVMGuestState",
                        },
                    },
                },
            },
            os_profile: OsProfile {
                computer_name: name.into(),
                admin_username: ADMIN_USERNAME.into(),
                linux_configuration: LinuxConfiguration {
                    disable_password_authentication: true,
                    provision_vm_agent: false,
                    ssh: SshConfiguration {
                        public_keys: vec![SshPublicKey {
                            path: authorized_keys_path(),
                            key_data: nobody_ssh_key(),
                        }],
                    },
                },
                allow_extension_operations: false,
            },
            network_profile: NetworkProfile {
                network_interfaces: vec![NetworkInterfaceReference {
                    id: nic_id.into(),
                    properties: NetworkInterfaceReferenceProperties {
                        primary: true,
                        delete_option: "Delete",
                    },
                }],
            },
            user_data: base64::engine::general_purpose::STANDARD.encode(bootstrap),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use cdvm_provider_api::conformance::sample_spec;
    use cdvm_provider_api::{JobTag, OwnerTag};

    #[test]
    fn the_vm_body_has_the_confidential_settings_arm_expects() {
        let cfg: AzureProviderConfig = serde_yaml_ng::from_str(
            "{subscription_id: s, location: westeurope, resource_group: g, subnet_id: /sub,
              image_id: /img, owner_tag_key: cdvm-owner, owner_tag: o,
              allowed_vm_sizes: [Standard_DC2as_v5]}",
        )
        .expect("config");
        let spec = sample_spec(&OwnerTag("o".into()), &JobTag("j".into()));
        let size = crate::sizes::lookup("Standard_DC2as_v5").expect("size");
        let body = serde_json::to_value(vm(&cfg, &spec, size, "cdvm-x", "/nic").expect("body"))
            .expect("json");
        let p = &body["properties"];
        assert_eq!(p["hardwareProfile"]["vmSize"], "Standard_DC2as_v5");
        assert_eq!(p["securityProfile"]["securityType"], "ConfidentialVM");
        assert_eq!(p["securityProfile"]["uefiSettings"]["vTpmEnabled"], true);
        assert_eq!(
            p["storageProfile"]["osDisk"]["managedDisk"]["securityProfile"]
                ["securityEncryptionType"],
            "DiskWithVMGuestState"
        );
        assert_eq!(p["storageProfile"]["imageReference"]["id"], "/img");
        assert_eq!(
            p["osProfile"]["linuxConfiguration"]["provisionVMAgent"],
            false
        );
        assert_eq!(
            p["networkProfile"]["networkInterfaces"][0]["properties"]["deleteOption"],
            "Delete"
        );
        assert!(body.get("identity").is_none(), "no managed identity");
        assert_eq!(body["tags"]["cdvm-owner"], "o");
        assert_eq!(body["tags"]["cdvm-job"], "j");
        let user_data = base64::engine::general_purpose::STANDARD
            .decode(p["userData"].as_str().expect("userData"))
            .expect("base64");
        let back: cdvm_provider_api::Bootstrap =
            serde_json::from_slice(&user_data).expect("bootstrap JSON");
        assert_eq!(back, spec.bootstrap);
    }
}
