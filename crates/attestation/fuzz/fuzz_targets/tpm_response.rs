//! The guest-side Azure vTPM parsers (TPM2 response framing, NV_ReadPublic, NV_Read, PCR_Read,
//! Quote, ReadPublic, GetCapability responses, and IMDS's HTTP/1.1 responses): any bytes from
//! the TPM or IMDS give a value or an error, never a panic.
#![no_main]

use cdvm_attestation::azure::imds::parse_http_response;
use cdvm_attestation::azure::tpm_client::marshal::{
    parse_nv_read, parse_nv_read_public, parse_pcr_read, parse_quote, parse_read_public,
    parse_response, parse_rsa_public, parse_tpm_properties,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    for handles in 0..2 {
        for sessions in [false, true] {
            if let Ok(r) = parse_response(data, handles, sessions) {
                let p = r.params;
                let _ = parse_nv_read_public(p);
                let _ = parse_nv_read(p, 1024);
                let _ = parse_pcr_read(p);
                let _ = parse_quote(p);
                let _ = parse_read_public(p);
                let _ = parse_tpm_properties(p);
            }
        }
    }
    let _ = parse_rsa_public(data);
    let _ = parse_http_response(data);
});
