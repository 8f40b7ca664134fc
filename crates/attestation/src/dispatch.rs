//! The verifier a client uses: picks the CPU verifier for the evidence's TEE family, then checks
//! any attached GPU evidence against the same report data.

use std::time::SystemTime;

use crate::{Claims, Evidence, Policy, ReportData, Verifier, VerifyError};

/// Verifies any supported evidence. A family whose feature is off is refused, never skipped.
#[derive(Clone, Copy, Debug, Default)]
pub struct AnyVerifier;

impl Verifier for AnyVerifier {
    // With every TEE feature off, each arm refuses and the GPU step cannot be reached.
    #[cfg_attr(
        not(any(feature = "snp", feature = "tdx")),
        allow(unreachable_code, unused_variables)
    )]
    fn verify(
        &self,
        evidence: &Evidence,
        expected: &ReportData,
        policy: &Policy,
        now: SystemTime,
    ) -> Result<Claims, VerifyError> {
        let mut claims: Claims = match evidence {
            #[cfg(feature = "snp")]
            Evidence::SevSnp(_) => {
                crate::snp::SnpVerifier.verify(evidence, expected, policy, now)?
            }
            #[cfg(not(feature = "snp"))]
            Evidence::SevSnp(_) => {
                return Err(VerifyError::Unsupported {
                    what: "SEV-SNP evidence",
                    feature: "snp",
                })
            }
            #[cfg(feature = "tdx")]
            Evidence::Tdx(_) => {
                crate::tdx::TdxVerifier::default().verify(evidence, expected, policy, now)?
            }
            #[cfg(not(feature = "tdx"))]
            Evidence::Tdx(_) => {
                return Err(VerifyError::Unsupported {
                    what: "TDX quotes",
                    feature: "tdx",
                })
            }
            #[cfg(feature = "azure")]
            Evidence::AzureSevSnpVtpm(_) => {
                crate::azure::AzureVtpmVerifier.verify(evidence, expected, policy, now)?
            }
            #[cfg(not(feature = "azure"))]
            Evidence::AzureSevSnpVtpm(_) => {
                return Err(VerifyError::Unsupported {
                    what: "Azure vTPM evidence",
                    feature: "azure",
                })
            }
            #[cfg(all(feature = "azure", feature = "tdx"))]
            Evidence::AzureTdxVtpm(_) => crate::azure::AzureTdxVtpmVerifier::default()
                .verify(evidence, expected, policy, now)?,
            #[cfg(not(all(feature = "azure", feature = "tdx")))]
            Evidence::AzureTdxVtpm(_) => {
                return Err(VerifyError::Unsupported {
                    what: "Azure TDX vTPM evidence",
                    feature: "azure and tdx",
                })
            }
        };
        let gpu_checks =
            crate::nvidia::verify_gpus(evidence.gpus(), expected, policy.gpu.as_ref(), now)?;
        // GPU evidence accepted under a policy that trusts a simulated GPU root (a development
        // policy): the verdict must not look like real hardware.
        if !evidence.gpus().is_empty()
            && policy
                .gpu
                .as_ref()
                .is_some_and(crate::nvidia::GpuPolicy::trusts_simulated)
        {
            claims.simulated = true;
        }
        claims.checks.extend(gpu_checks);
        Ok(claims)
    }
}
