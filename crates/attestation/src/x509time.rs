//! Certificate validity at a given time, shared by the SNP, TDX and NVIDIA chain checks.

use std::cmp::Ordering;

use openssl::asn1::Asn1TimeRef;
use openssl::x509::X509Ref;

/// True if `at` lies within `cert`'s notBefore..=notAfter. An unreadable time counts as outside.
pub(crate) fn valid_at(cert: &X509Ref, at: &Asn1TimeRef) -> bool {
    let started = matches!(
        cert.not_before().compare(at),
        Ok(Ordering::Less | Ordering::Equal)
    );
    let not_ended = matches!(
        cert.not_after().compare(at),
        Ok(Ordering::Greater | Ordering::Equal)
    );
    started && not_ended
}
