//! The emulator's stand-in for `terraform apply` of terraform/aws: creates, in moto, the network
//! and image the AWS backend's config names (VPC, job subnet, a security group with no inbound
//! rules and egress 443 only, a UEFI AMI), and returns their ids.

use serde::Serialize;

/// Ids of what was created, named like terraform/aws's outputs.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct AwsFixture {
    /// Region.
    pub region: String,
    /// The job subnet.
    pub subnet_id: String,
    /// The job security group.
    pub security_group_id: String,
    /// The guest image.
    pub ami_id: String,
}

/// Why setting up failed.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    /// moto could not be reached.
    #[error("{action}: moto unreachable")]
    Http {
        /// The EC2 action.
        action: &'static str,
        /// The failure.
        #[source]
        source: reqwest::Error,
    },
    /// moto refused or answered without the expected id.
    #[error("{action}: unexpected answer: {answer}")]
    Answer {
        /// The EC2 action.
        action: &'static str,
        /// Its text (truncated).
        answer: String,
    },
}

/// An `Authorization` header moto accepts: it routes by the credential scope's service (no
/// header means S3) and takes the region from it; it does not check the signature.
pub fn moto_authorization(region: &str) -> String {
    format!(
        "AWS4-HMAC-SHA256 Credential=testing/20260101/{region}/ec2/aws4_request, SignedHeaders=host, Signature=0"
    )
}

async fn call(
    http: &reqwest::Client,
    moto: &str,
    region: &str,
    action: &'static str,
    params: &[(&str, &str)],
    id_element: &str,
) -> Result<String, SetupError> {
    let mut form: Vec<(&str, &str)> = vec![("Action", action), ("Version", "2016-11-15")];
    form.extend_from_slice(params);
    let body = serde_urlencoded::to_string(&form).unwrap_or_default();
    let auth = moto_authorization(region);
    let text = http
        .post(moto)
        .header("content-type", "application/x-www-form-urlencoded")
        .header("authorization", auth)
        .body(body)
        .send()
        .await
        .map_err(|source| SetupError::Http { action, source })?
        .text()
        .await
        .map_err(|source| SetupError::Http { action, source })?;
    let open = format!("<{id_element}>");
    let close = format!("</{id_element}>");
    text.split_once(&open)
        .and_then(|(_, rest)| rest.split_once(&close))
        .map(|(id, _)| id.to_string())
        .ok_or_else(|| SetupError::Answer {
            action,
            answer: text.chars().take(400).collect(),
        })
}

/// Creates the network and image in the moto server at `moto`.
pub async fn provision(moto: &str, region: &str) -> Result<AwsFixture, SetupError> {
    let http = reqwest::Client::new();
    let c = |action, params: &'static [(&'static str, &'static str)], id| {
        call(&http, moto, region, action, params, id)
    };
    let vpc = c("CreateVpc", &[("CidrBlock", "10.42.0.0/16")], "vpcId").await?;
    let subnet = call(
        &http,
        moto,
        region,
        "CreateSubnet",
        &[("VpcId", &vpc), ("CidrBlock", "10.42.1.0/24")],
        "subnetId",
    )
    .await?;
    let group = call(
        &http,
        moto,
        region,
        "CreateSecurityGroup",
        &[
            ("GroupName", "cdvm-jobs"),
            (
                "GroupDescription",
                "ConfidentialDVM job VMs: no inbound, egress 443 only",
            ),
            ("VpcId", &vpc),
        ],
        "groupId",
    )
    .await?;
    // Replace the default allow-all egress with TCP 443 only, as terraform/aws does.
    let _ = call(
        &http,
        moto,
        region,
        "RevokeSecurityGroupEgress",
        &[
            ("GroupId", &group),
            ("IpPermissions.1.IpProtocol", "-1"),
            ("IpPermissions.1.IpRanges.1.CidrIp", "0.0.0.0/0"),
        ],
        "return",
    )
    .await?;
    let _ = call(
        &http,
        moto,
        region,
        "AuthorizeSecurityGroupEgress",
        &[
            ("GroupId", &group),
            ("IpPermissions.1.IpProtocol", "tcp"),
            ("IpPermissions.1.FromPort", "443"),
            ("IpPermissions.1.ToPort", "443"),
            ("IpPermissions.1.IpRanges.1.CidrIp", "0.0.0.0/0"),
        ],
        "return",
    )
    .await?;
    let ami = c(
        "RegisterImage",
        &[
            ("Name", "cdvm-guest"),
            ("Architecture", "x86_64"),
            ("BootMode", "uefi"),
            ("VirtualizationType", "hvm"),
            ("RootDeviceName", "/dev/xvda"),
        ],
        "imageId",
    )
    .await?;
    Ok(AwsFixture {
        region: region.to_string(),
        subnet_id: subnet,
        security_group_id: group,
        ami_id: ami,
    })
}
