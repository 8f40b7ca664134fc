//! The mock cloud's settings (YAML, unknown keys refused).

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::Deserialize;

/// Everything the mock cloud is told at start.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MockCloudConfig {
    /// Address to listen on (`127.0.0.1:0` picks a free port).
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// Faults to inject into every cloud API (not into the metadata services).
    #[serde(default)]
    pub faults: FaultConfig,
    /// How instances "boot"; without it, instances are records only (enough for lifecycle tests).
    #[serde(default)]
    pub boot: Option<BootConfig>,
    /// The moto server the EC2 proxy forwards to; without it, EC2 calls are refused.
    #[serde(default)]
    pub moto_url: Option<String>,
}

impl Default for MockCloudConfig {
    fn default() -> Self {
        Self {
            listen: default_listen(),
            faults: FaultConfig::default(),
            boot: None,
            moto_url: None,
        }
    }
}

fn default_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

/// Injected faults, each drawn per request from a seeded generator (a failing run can be replayed).
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct FaultConfig {
    /// Seed of the generator.
    #[serde(default)]
    pub seed: u64,
    /// Share of API calls answered with a 5xx in the cloud's error shape (0.0–1.0).
    #[serde(default)]
    pub error_rate: f64,
    /// Share of API calls answered with the cloud's throttling error (429 / RequestLimitExceeded).
    #[serde(default)]
    pub throttle_rate: f64,
    /// How long a new instance stays provisioning before it runs.
    #[serde(default)]
    pub provisioning_delay_ms: u64,
    /// Share of deletes acknowledged but not carried out (the backend must notice and retry).
    #[serde(default)]
    pub lost_delete_rate: f64,
    /// API calls answered with a 5xx and not carried out, the first time each is made, named as
    /// the cloud names the operation (`RegisterImage`, `images.insert`, `galleryImageVersions.create`,
    /// …): deterministic faults for tests of a multi-step operation's rollback. A name listed
    /// n times fails the first n calls (clients retry 5xx).
    ///
    /// GCP: `objects.insert` (starting an upload), `objects.upload` (a chunk), `objects.get`,
    /// `objects.delete`, `images.insert`, `images.get`, `images.delete`, `globalOperations.get`,
    /// `globalOperations.wait`; and `images.insert.operation`, which lets the insert through but
    /// ends its operation with an error (the image is left FAILED).
    ///
    /// Azure: `blobs.put`, `blobs.putPage`, `blobs.getProperties`,
    /// `blobs.delete`, `galleryImages.get`, `galleryImages.createOrUpdate`,
    /// `galleryImages.delete`, `galleryImageVersions.get`,
    /// `galleryImageVersions.createOrUpdate`, `galleryImageVersions.delete`; and
    /// `galleryImageVersions.provisioning`, which is no 5xx: the version is created and its
    /// operation ends `Failed` (`ReplicationJobsNotCompleted`). AWS's: any EC2 `Action`
    /// (`RegisterImage`, `DescribeImages`, `DeleteSnapshot`, …) and the EBS direct APIs
    /// `StartSnapshot`, `PutSnapshotBlock`, `CompleteSnapshot`.
    #[serde(default)]
    pub fail_calls: Vec<String>,
}

/// Booting instances as local agent processes (the process provider, with the bootstrap served
/// from the emulated metadata service).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BootConfig {
    /// The `cdvm-agent` executable.
    pub agent_binary: PathBuf,
    /// State folder of the local process provider (its simulated secure processor and
    /// `dev-policy.yaml` live there).
    pub state_dir: PathBuf,
}
