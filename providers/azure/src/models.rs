//! Typed ARM request and response bodies: only the fields this backend sends or reads
//! (Microsoft.Compute 2024-07-01, Microsoft.Network 2024-05-01). Responses are read leniently:
//! unknown fields are ignored, as ARM adds fields over time.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// `PUT …/networkInterfaces/{name}`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NetworkInterface {
    /// Region.
    pub location: String,
    /// Resource tags.
    pub tags: BTreeMap<String, String>,
    /// Properties.
    pub properties: NetworkInterfaceProperties,
}

/// NIC properties.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NetworkInterfaceProperties {
    /// One private IP configuration in the job subnet; no public IP.
    pub ip_configurations: Vec<IpConfiguration>,
}

/// A NIC IP configuration.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct IpConfiguration {
    /// Configuration name.
    pub name: String,
    /// Properties.
    pub properties: IpConfigurationProperties,
}

/// IP configuration properties.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct IpConfigurationProperties {
    /// The subnet.
    pub subnet: SubResource,
    /// `Dynamic`.
    pub private_ip_allocation_method: &'static str,
    /// The NIC's primary configuration.
    pub primary: bool,
}

/// A reference to another resource by id.
#[derive(Debug, Serialize, Deserialize)]
pub struct SubResource {
    /// Resource id.
    pub id: String,
}

/// `PUT …/virtualMachines/{name}`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct VirtualMachine {
    /// Region.
    pub location: String,
    /// Resource tags (owner and job).
    pub tags: BTreeMap<String, String>,
    /// Properties.
    pub properties: VirtualMachineProperties,
}

/// VM properties.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct VirtualMachineProperties {
    /// The size.
    pub hardware_profile: HardwareProfile,
    /// Confidential VM settings.
    pub security_profile: SecurityProfile,
    /// Image and OS disk.
    pub storage_profile: StorageProfile,
    /// Computer name and the (unusable) admin account.
    pub os_profile: OsProfile,
    /// The job NIC.
    pub network_profile: NetworkProfile,
    /// Base64 of the bootstrap JSON; the guest reads it from IMDS.
    pub user_data: String,
}

/// `hardwareProfile`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HardwareProfile {
    /// ARM size name.
    pub vm_size: String,
}

/// `securityProfile`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SecurityProfile {
    /// `ConfidentialVM`.
    pub security_type: &'static str,
    /// Secure boot and vTPM.
    pub uefi_settings: UefiSettings,
}

/// `uefiSettings`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UefiSettings {
    /// Secure boot.
    pub secure_boot_enabled: bool,
    /// Virtual TPM (required by confidential VMs).
    #[serde(rename = "vTpmEnabled")]
    pub vtpm_enabled: bool,
}

/// `storageProfile`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StorageProfile {
    /// The gallery image version.
    pub image_reference: SubResource,
    /// The OS disk.
    pub os_disk: OsDisk,
}

/// `osDisk`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OsDisk {
    /// `FromImage`.
    pub create_option: &'static str,
    /// `Delete`: the disk goes with the VM.
    pub delete_option: &'static str,
    /// Confidential disk encryption.
    pub managed_disk: ManagedDisk,
}

/// `managedDisk`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ManagedDisk {
    /// Disk security.
    pub security_profile: DiskSecurityProfile,
}

/// `managedDisk.securityProfile`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DiskSecurityProfile {
    /// `DiskWithVMGuestState`: OS disk and VM guest state encrypted with a key bound to the
    /// VM's TPM.
    pub security_encryption_type: &'static str,
}

/// `osProfile`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OsProfile {
    /// Host name.
    pub computer_name: String,
    /// The admin account ARM insists on (see `nologin`).
    pub admin_username: String,
    /// Linux settings.
    pub linux_configuration: LinuxConfiguration,
    /// No VM extensions (no Run Command, no custom scripts) on job VMs.
    pub allow_extension_operations: bool,
}

/// `linuxConfiguration`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LinuxConfiguration {
    /// No password logins.
    pub disable_password_authentication: bool,
    /// No Azure VM agent: nothing of the operator's runs inside the guest.
    #[serde(rename = "provisionVMAgent")]
    pub provision_vm_agent: bool,
    /// SSH keys.
    pub ssh: SshConfiguration,
}

/// `ssh`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SshConfiguration {
    /// Authorized keys.
    pub public_keys: Vec<SshPublicKey>,
}

/// One authorized key.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SshPublicKey {
    /// Where the key would be written.
    pub path: String,
    /// OpenSSH public key line.
    pub key_data: String,
}

/// `networkProfile`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NetworkProfile {
    /// The NICs.
    pub network_interfaces: Vec<NetworkInterfaceReference>,
}

/// A NIC attached to the VM.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NetworkInterfaceReference {
    /// NIC resource id.
    pub id: String,
    /// Attachment settings.
    pub properties: NetworkInterfaceReferenceProperties,
}

/// NIC attachment settings.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NetworkInterfaceReferenceProperties {
    /// Primary NIC.
    pub primary: bool,
    /// `Delete`: the NIC goes with the VM.
    pub delete_option: &'static str,
}

/// A VM as `GET` and list return it (only what is read).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VirtualMachineView {
    /// VM name.
    pub name: String,
    /// Tags.
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    /// Properties.
    #[serde(default)]
    pub properties: VirtualMachineViewProperties,
}

/// Read VM properties.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VirtualMachineViewProperties {
    /// `Creating`, `Updating`, `Succeeded`, `Failed`, `Deleting`, …
    #[serde(default)]
    pub provisioning_state: Option<String>,
    /// With `$expand=instanceView`.
    #[serde(default)]
    pub instance_view: Option<InstanceView>,
}

/// `instanceView`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InstanceView {
    /// `ProvisioningState/…` and `PowerState/…` entries.
    #[serde(default)]
    pub statuses: Vec<InstanceViewStatus>,
}

/// One instance view status.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InstanceViewStatus {
    /// `PowerState/running`, …
    pub code: String,
    /// Human text.
    #[serde(default)]
    pub display_status: Option<String>,
}

/// Any resource, for its provisioning state only (deletion progress of VMs and NICs).
#[derive(Debug, Default, Deserialize)]
pub struct ResourceState {
    /// Properties.
    #[serde(default)]
    pub properties: ResourceStateProperties,
}

/// `properties.provisioningState`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResourceStateProperties {
    /// The state.
    #[serde(default)]
    pub provisioning_state: Option<String>,
}

/// A page of `GET …/virtualMachines`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VirtualMachineList {
    /// The VMs.
    #[serde(default)]
    pub value: Vec<VirtualMachineView>,
    /// The next page, if any.
    #[serde(default)]
    pub next_link: Option<String>,
}

/// The `Azure-AsyncOperation` status resource.
#[derive(Debug, Deserialize)]
pub struct AsyncOperation {
    /// `InProgress`, `Succeeded`, `Failed`, `Canceled`.
    pub status: String,
    /// Why it failed.
    #[serde(default)]
    pub error: Option<ErrorDetail>,
}

/// ARM's error body: `{"error": {"code": …, "message": …}}`.
#[derive(Debug, Deserialize)]
pub struct ErrorResponse {
    /// The error.
    pub error: ErrorDetail,
}

/// An ARM error.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
pub struct ErrorDetail {
    /// Machine-readable code (`AllocationFailed`).
    #[serde(default)]
    pub code: String,
    /// Human message.
    #[serde(default)]
    pub message: String,
    /// Nested errors (ARM puts the real cause here at times).
    #[serde(default)]
    pub details: Vec<ErrorDetail>,
}
