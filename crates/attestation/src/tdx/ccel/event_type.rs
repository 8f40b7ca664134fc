//! TCG event types (TCG PC Client Platform Firmware Profile), by their spec names.

use std::fmt;

use serde::{Deserialize, Serialize};

macro_rules! event_types {
    ($( $(#[$doc:meta])* $variant:ident = $value:literal, $name:literal; )*) => {
        /// A TCG event type. Policies name it by its spec name (`EV_IPL`), or an unlisted one as
        /// hex (`0x0000000e`).
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum EventType {
            $( $(#[$doc])* $variant, )*
            /// Any other value.
            Other(u32),
        }

        impl EventType {
            /// The type of a raw `eventType`.
            pub fn from_u32(value: u32) -> Self {
                match value {
                    $( $value => Self::$variant, )*
                    other => Self::Other(other),
                }
            }

            /// The raw `eventType`.
            pub fn as_u32(self) -> u32 {
                match self {
                    $( Self::$variant => $value, )*
                    Self::Other(value) => value,
                }
            }

            /// The spec name, or `None` for [`EventType::Other`].
            pub fn name(self) -> Option<&'static str> {
                match self {
                    $( Self::$variant => Some($name), )*
                    Self::Other(_) => None,
                }
            }

            /// Parses a spec name (`EV_IPL`) or a hex value (`0x0000000d`).
            pub fn parse(text: &str) -> Option<Self> {
                match text {
                    $( $name => Some(Self::$variant), )*
                    other => other
                        .strip_prefix("0x")
                        .and_then(|hex| u32::from_str_radix(hex, 16).ok())
                        .map(Self::from_u32),
                }
            }
        }
    };
}

event_types! {
    /// EV_PREBOOT_CERT (deprecated).
    PrebootCert = 0x0000_0000, "EV_PREBOOT_CERT";
    /// EV_POST_CODE: firmware code (digest of the code).
    PostCode = 0x0000_0001, "EV_POST_CODE";
    /// EV_NO_ACTION: informational, never extended (the Spec ID event is one).
    NoAction = 0x0000_0003, "EV_NO_ACTION";
    /// EV_SEPARATOR: end of pre-boot measurements (digest of its data).
    Separator = 0x0000_0004, "EV_SEPARATOR";
    /// EV_ACTION.
    Action = 0x0000_0005, "EV_ACTION";
    /// EV_EVENT_TAG.
    EventTag = 0x0000_0006, "EV_EVENT_TAG";
    /// EV_S_CRTM_CONTENTS.
    SCrtmContents = 0x0000_0007, "EV_S_CRTM_CONTENTS";
    /// EV_S_CRTM_VERSION.
    SCrtmVersion = 0x0000_0008, "EV_S_CRTM_VERSION";
    /// EV_CPU_MICROCODE.
    CpuMicrocode = 0x0000_0009, "EV_CPU_MICROCODE";
    /// EV_PLATFORM_CONFIG_FLAGS (OVMF: the ACPI tables it installs, data "ACPI DATA").
    PlatformConfigFlags = 0x0000_000A, "EV_PLATFORM_CONFIG_FLAGS";
    /// EV_TABLE_OF_DEVICES.
    TableOfDevices = 0x0000_000B, "EV_TABLE_OF_DEVICES";
    /// EV_COMPACT_HASH.
    CompactHash = 0x0000_000C, "EV_COMPACT_HASH";
    /// EV_IPL: boot loader measurements (GRUB: its commands, kernel command line, files).
    Ipl = 0x0000_000D, "EV_IPL";
    /// EV_IPL_PARTITION_DATA.
    IplPartitionData = 0x0000_000E, "EV_IPL_PARTITION_DATA";
    /// EV_NONHOST_CODE.
    NonhostCode = 0x0000_000F, "EV_NONHOST_CODE";
    /// EV_NONHOST_CONFIG.
    NonhostConfig = 0x0000_0010, "EV_NONHOST_CONFIG";
    /// EV_NONHOST_INFO.
    NonhostInfo = 0x0000_0011, "EV_NONHOST_INFO";
    /// EV_OMIT_BOOT_DEVICE_EVENTS.
    OmitBootDeviceEvents = 0x0000_0012, "EV_OMIT_BOOT_DEVICE_EVENTS";
    /// EV_EFI_VARIABLE_DRIVER_CONFIG: a Secure Boot variable (digest of UEFI_VARIABLE_DATA).
    EfiVariableDriverConfig = 0x8000_0001, "EV_EFI_VARIABLE_DRIVER_CONFIG";
    /// EV_EFI_VARIABLE_BOOT: a BootOrder/Boot#### variable.
    EfiVariableBoot = 0x8000_0002, "EV_EFI_VARIABLE_BOOT";
    /// EV_EFI_BOOT_SERVICES_APPLICATION: a UEFI application (shim, GRUB, a UKI), digest of
    /// its PE/COFF image (Authenticode).
    EfiBootServicesApplication = 0x8000_0003, "EV_EFI_BOOT_SERVICES_APPLICATION";
    /// EV_EFI_BOOT_SERVICES_DRIVER.
    EfiBootServicesDriver = 0x8000_0004, "EV_EFI_BOOT_SERVICES_DRIVER";
    /// EV_EFI_RUNTIME_SERVICES_DRIVER.
    EfiRuntimeServicesDriver = 0x8000_0005, "EV_EFI_RUNTIME_SERVICES_DRIVER";
    /// EV_EFI_GPT_EVENT: the boot disk's GPT (digest of UEFI_GPT_DATA).
    EfiGptEvent = 0x8000_0006, "EV_EFI_GPT_EVENT";
    /// EV_EFI_ACTION: a firmware action string (digest of the string).
    EfiAction = 0x8000_0007, "EV_EFI_ACTION";
    /// EV_EFI_PLATFORM_FIRMWARE_BLOB.
    EfiPlatformFirmwareBlob = 0x8000_0008, "EV_EFI_PLATFORM_FIRMWARE_BLOB";
    /// EV_EFI_HANDOFF_TABLES.
    EfiHandoffTables = 0x8000_0009, "EV_EFI_HANDOFF_TABLES";
    /// EV_EFI_PLATFORM_FIRMWARE_BLOB2: a firmware volume, with a description.
    EfiPlatformFirmwareBlob2 = 0x8000_000A, "EV_EFI_PLATFORM_FIRMWARE_BLOB2";
    /// EV_EFI_HANDOFF_TABLES2: a handoff table, with a description (TDX: the TD HOB, `TdxTable`).
    EfiHandoffTables2 = 0x8000_000B, "EV_EFI_HANDOFF_TABLES2";
    /// EV_EFI_VARIABLE_BOOT2.
    EfiVariableBoot2 = 0x8000_000C, "EV_EFI_VARIABLE_BOOT2";
    /// EV_EFI_HCRTM_EVENT.
    EfiHcrtmEvent = 0x8000_0010, "EV_EFI_HCRTM_EVENT";
    /// EV_EFI_VARIABLE_AUTHORITY: the certificate that authorised an image (digest of
    /// UEFI_VARIABLE_DATA).
    EfiVariableAuthority = 0x8000_00E0, "EV_EFI_VARIABLE_AUTHORITY";
    /// EV_EFI_SPDM_FIRMWARE_BLOB.
    EfiSpdmFirmwareBlob = 0x8000_00E1, "EV_EFI_SPDM_FIRMWARE_BLOB";
    /// EV_EFI_SPDM_FIRMWARE_CONFIG.
    EfiSpdmFirmwareConfig = 0x8000_00E2, "EV_EFI_SPDM_FIRMWARE_CONFIG";
}

impl EventType {
    /// True for types whose digest the PC Client profile defines as the hash of the event data
    /// itself, and that OVMF, shim and GRUB log that way: their data is checked at parse time,
    /// so it is as trustworthy as the digest. Not listed: EV_EFI_VARIABLE_BOOT (EDK2 hashes only
    /// the variable's value, not the logged UEFI_VARIABLE_DATA), EV_IPL (GRUB hashes the text
    /// after its `grub_cmd: ` / `kernel_cmdline: ` prefix, or a file named by the data), and
    /// every type whose digest covers something else (an image, a firmware volume, a table).
    pub fn digest_covers_data(self) -> bool {
        matches!(
            self,
            Self::Separator
                | Self::EfiAction
                | Self::EfiGptEvent
                | Self::EfiVariableDriverConfig
                | Self::EfiVariableAuthority
        )
    }
}

impl fmt::Display for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(name) => f.write_str(name),
            None => write!(f, "{:#010x}", self.as_u32()),
        }
    }
}

impl Serialize for EventType {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for EventType {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Self::parse(text.trim()).ok_or_else(|| {
            serde::de::Error::custom(format!(
                "unknown event type {text:?} (an EV_* name or 0x-prefixed hex)"
            ))
        })
    }
}
