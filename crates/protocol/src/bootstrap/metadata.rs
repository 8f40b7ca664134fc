//! How a cloud guest finds its bootstrap: each cloud's instance metadata service, at its
//! link-local address. The bootstrap is public (DESIGN §3), so metadata is a fitting place for it.

use std::fmt;

/// A cloud's instance metadata service, as the guest agent reads it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MetadataService {
    /// EC2 IMDSv2: `PUT /latest/api/token`, then `GET /latest/user-data` with the token.
    /// The user data is the bootstrap JSON (launch sends it base64-encoded, as EC2 requires).
    Aws,
    /// GCE metadata server: `GET /computeMetadata/v1/instance/attributes/cdvm-bootstrap` with
    /// `Metadata-Flavor: Google`.
    Gcp,
    /// Azure IMDS: `GET /metadata/instance/compute/userData?api-version=2021-01-01&format=text`
    /// with `Metadata: true`; the answer is the base64 user data.
    Azure,
}

/// The GCE instance metadata key holding the bootstrap JSON.
pub const GCE_BOOTSTRAP_KEY: &str = "cdvm-bootstrap";

/// The Azure IMDS API version the guest asks for (the first with `userData`).
pub const AZURE_IMDS_API_VERSION: &str = "2021-01-01";

impl MetadataService {
    /// Every service, for argument parsing.
    pub const ALL: [MetadataService; 3] = [Self::Aws, Self::Gcp, Self::Azure];

    /// The name used on command lines and in configs.
    pub fn name(self) -> &'static str {
        match self {
            Self::Aws => "aws",
            Self::Gcp => "gcp",
            Self::Azure => "azure",
        }
    }

    /// Where the service answers inside a real cloud VM.
    pub fn default_endpoint(self) -> &'static str {
        match self {
            // https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/instancedata-data-retrieval.html
            Self::Aws => "http://169.254.169.254",
            // https://cloud.google.com/compute/docs/metadata/querying-metadata — the address, not
            // metadata.google.internal: the static guest agent has no resolver to look names up.
            Self::Gcp => "http://169.254.169.254",
            // https://learn.microsoft.com/azure/virtual-machines/instance-metadata-service
            Self::Azure => "http://169.254.169.254",
        }
    }
}

impl fmt::Display for MetadataService {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for MetadataService {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|m| m.name() == s)
            .ok_or_else(|| format!("unknown metadata service {s:?} (aws, gcp or azure)"))
    }
}
