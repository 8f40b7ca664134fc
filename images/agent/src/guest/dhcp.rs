//! The DHCPv4 message codec (RFC 2131, options RFC 2132, classless routes RFC 3442), written by
//! hand: PID 1 needs four message types and nine options, and every reply is untrusted input (the
//! host runs the DHCP server), so decoding bounds every read and never panics.
//!
//! What is decoded: a BOOTREPLY for our transaction (`xid`) and hardware address, its message type
//! and the options the lease needs. Option overload (52: options in `sname`/`file`) is not
//! supported; repeated instances of an option are concatenated (RFC 3396).

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

/// Client and server UDP ports.
pub(crate) const CLIENT_PORT: u16 = 68;
pub(crate) const SERVER_PORT: u16 = 67;

const BOOTREQUEST: u8 = 1;
const BOOTREPLY: u8 = 2;
const HTYPE_ETHER: u8 = 1;
/// Ask servers to broadcast their replies: until the ACK is applied the interface has no address,
/// so a unicast reply to the offered address would not reach our socket.
const FLAG_BROADCAST: u16 = 0x8000;
const MAGIC_COOKIE: [u8; 4] = [99, 130, 83, 99];
/// op … file: the fixed BOOTP header, then the cookie.
const FIXED_LEN: usize = 236;
/// Requests are padded to BOOTP's minimum: some relays and servers drop shorter packets.
const MIN_REQUEST_LEN: usize = 300;

const OPT_PAD: u8 = 0;
const OPT_SUBNET_MASK: u8 = 1;
const OPT_ROUTER: u8 = 3;
const OPT_DNS: u8 = 6;
const OPT_MTU: u8 = 26;
const OPT_REQUESTED_IP: u8 = 50;
const OPT_LEASE_TIME: u8 = 51;
const OPT_MESSAGE_TYPE: u8 = 53;
const OPT_SERVER_ID: u8 = 54;
const OPT_PARAMETER_LIST: u8 = 55;
const OPT_CLIENT_ID: u8 = 61;
const OPT_CLASSLESS_ROUTES: u8 = 121;
const OPT_END: u8 = 255;

/// What we ask servers for.
const REQUESTED: &[u8] = &[
    OPT_SUBNET_MASK,
    OPT_ROUTER,
    OPT_DNS,
    OPT_MTU,
    OPT_LEASE_TIME,
    OPT_SERVER_ID,
    OPT_CLASSLESS_ROUTES,
];

/// DHCP message types (option 53).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum MessageType {
    Discover = 1,
    Offer = 2,
    Request = 3,
    Ack = 5,
    Nak = 6,
}

impl MessageType {
    fn from_code(code: u8) -> Option<Self> {
        Some(match code {
            1 => Self::Discover,
            2 => Self::Offer,
            3 => Self::Request,
            5 => Self::Ack,
            6 => Self::Nak,
            _ => return None,
        })
    }
}

/// A route from option 121 (or the router option): `dst/prefix` via `gateway`; a gateway of
/// 0.0.0.0 means the destination is on the link (RFC 3442).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Route {
    pub dst: Ipv4Addr,
    pub prefix: u8,
    pub gateway: Ipv4Addr,
}

/// A decoded server reply (OFFER, ACK or NAK).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Reply {
    pub kind: MessageType,
    /// `yiaddr`: the address offered or acknowledged.
    pub address: Ipv4Addr,
    pub server_id: Option<Ipv4Addr>,
    /// Prefix length from the subnet mask (option 1).
    pub prefix: Option<u8>,
    /// Option 3, in the server's order.
    pub routers: Vec<Ipv4Addr>,
    /// Option 6, in the server's order.
    pub dns: Vec<Ipv4Addr>,
    /// Option 51, seconds (`u32::MAX` is infinite).
    pub lease_secs: Option<u32>,
    /// Option 26, when it is a usable MTU (68 or more, RFC 2132).
    pub mtu: Option<u16>,
    /// Option 121: when present it replaces the router option (RFC 3442).
    pub classless_routes: Option<Vec<Route>>,
}

impl Reply {
    /// The routes to install: option 121's when the server sent it, else a default route through
    /// the first router.
    pub(crate) fn routes(&self) -> Vec<Route> {
        match &self.classless_routes {
            Some(routes) => routes.clone(),
            None => self
                .routers
                .first()
                .map(|&gateway| Route {
                    dst: Ipv4Addr::UNSPECIFIED,
                    prefix: 0,
                    gateway,
                })
                .into_iter()
                .collect(),
        }
    }
}

/// Why a packet was refused.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub(crate) enum DecodeError {
    #[error("{0} bytes is shorter than a DHCP message")]
    Short(usize),
    #[error("not a BOOTREPLY for an Ethernet address")]
    NotReply,
    #[error("no DHCP magic cookie")]
    NoCookie,
    #[error("transaction id {got:#010x}, ours is {want:#010x}")]
    OtherXid { got: u32, want: u32 },
    #[error("addressed to another hardware address")]
    OtherClient,
    #[error("option {0} runs past the end of the packet")]
    TruncatedOption(u8),
    #[error("no end option")]
    NoEnd,
    #[error("no or unknown DHCP message type")]
    MessageType,
    #[error("option {0} has a malformed value")]
    BadOption(u8),
    #[error("offered address {0} is not a usable unicast address")]
    BadAddress(Ipv4Addr),
}

/// A client request: DISCOVER, or REQUEST for `requested` from `server`.
pub(crate) struct Request {
    pub kind: MessageType,
    pub xid: u32,
    pub mac: [u8; 6],
    /// Seconds since the exchange began (`secs`).
    pub secs: u16,
    /// For REQUEST (selecting state): the offered address and the offering server.
    pub requested: Option<(Ipv4Addr, Ipv4Addr)>,
}

impl Request {
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut p = Vec::with_capacity(MIN_REQUEST_LEN);
        p.extend_from_slice(&[BOOTREQUEST, HTYPE_ETHER, 6, 0]);
        p.extend_from_slice(&self.xid.to_be_bytes());
        p.extend_from_slice(&self.secs.to_be_bytes());
        p.extend_from_slice(&FLAG_BROADCAST.to_be_bytes());
        p.extend_from_slice(&[0; 16]); // ciaddr, yiaddr, siaddr, giaddr
        p.extend_from_slice(&self.mac);
        p.extend_from_slice(&[0; 10 + 64 + 128]); // chaddr padding, sname, file
        p.extend_from_slice(&MAGIC_COOKIE);
        p.extend_from_slice(&[OPT_MESSAGE_TYPE, 1, self.kind as u8]);
        p.extend_from_slice(&[OPT_CLIENT_ID, 7, HTYPE_ETHER]);
        p.extend_from_slice(&self.mac);
        if let Some((address, server)) = self.requested {
            p.extend_from_slice(&[OPT_REQUESTED_IP, 4]);
            p.extend_from_slice(&address.octets());
            p.extend_from_slice(&[OPT_SERVER_ID, 4]);
            p.extend_from_slice(&server.octets());
        }
        p.extend_from_slice(&[OPT_PARAMETER_LIST, REQUESTED.len() as u8]);
        p.extend_from_slice(REQUESTED);
        p.push(OPT_END);
        if p.len() < MIN_REQUEST_LEN {
            p.resize(MIN_REQUEST_LEN, OPT_PAD);
        }
        p
    }
}

/// Decodes a server's reply to transaction `xid` from client `mac`.
pub(crate) fn decode(packet: &[u8], xid: u32, mac: &[u8; 6]) -> Result<Reply, DecodeError> {
    if packet.len() < FIXED_LEN + MAGIC_COOKIE.len() {
        return Err(DecodeError::Short(packet.len()));
    }
    let be32 = |at: usize| {
        packet
            .get(at..at + 4)
            .and_then(|b| b.try_into().ok())
            .map(u32::from_be_bytes)
            .unwrap_or(0)
    };
    if packet[0] != BOOTREPLY || packet[1] != HTYPE_ETHER || packet[2] != 6 {
        return Err(DecodeError::NotReply);
    }
    let got = be32(4);
    if got != xid {
        return Err(DecodeError::OtherXid { got, want: xid });
    }
    if packet[28..34] != mac[..] {
        return Err(DecodeError::OtherClient);
    }
    if packet[FIXED_LEN..FIXED_LEN + 4] != MAGIC_COOKIE {
        return Err(DecodeError::NoCookie);
    }
    let options = parse_options(&packet[FIXED_LEN + 4..])?;
    let kind = match options.get(&OPT_MESSAGE_TYPE).map(Vec::as_slice) {
        Some([code]) => MessageType::from_code(*code).ok_or(DecodeError::MessageType)?,
        _ => return Err(DecodeError::MessageType),
    };
    let address = Ipv4Addr::from(be32(16));
    if kind != MessageType::Nak && !usable_unicast(address) {
        return Err(DecodeError::BadAddress(address));
    }
    let one_addr = |code: u8| -> Result<Option<Ipv4Addr>, DecodeError> {
        match options.get(&code) {
            None => Ok(None),
            Some(v) => match <[u8; 4]>::try_from(v.as_slice()) {
                Ok(b) => Ok(Some(Ipv4Addr::from(b))),
                Err(_) => Err(DecodeError::BadOption(code)),
            },
        }
    };
    let addrs = |code: u8| -> Result<Vec<Ipv4Addr>, DecodeError> {
        match options.get(&code) {
            None => Ok(Vec::new()),
            Some(v) if v.is_empty() || v.len() % 4 != 0 => Err(DecodeError::BadOption(code)),
            Some(v) => Ok(v
                .chunks_exact(4)
                .map(|c| Ipv4Addr::new(c[0], c[1], c[2], c[3]))
                .collect()),
        }
    };
    let prefix = match one_addr(OPT_SUBNET_MASK)? {
        None => None,
        Some(mask) => Some(mask_prefix(mask).ok_or(DecodeError::BadOption(OPT_SUBNET_MASK))?),
    };
    let lease_secs = match options.get(&OPT_LEASE_TIME) {
        None => None,
        Some(v) => Some(u32::from_be_bytes(
            v.as_slice()
                .try_into()
                .map_err(|_| DecodeError::BadOption(OPT_LEASE_TIME))?,
        )),
    };
    let mtu = match options.get(&OPT_MTU) {
        None => None,
        Some(v) => {
            let mtu = u16::from_be_bytes(
                v.as_slice()
                    .try_into()
                    .map_err(|_| DecodeError::BadOption(OPT_MTU))?,
            );
            // Below 68 is not a legal IPv4 MTU (RFC 2132 9.3, RFC 791): ignore it rather than
            // cut the link off.
            (mtu >= 68).then_some(mtu)
        }
    };
    let classless_routes = match options.get(&OPT_CLASSLESS_ROUTES) {
        None => None,
        Some(v) => Some(classless_routes(v).ok_or(DecodeError::BadOption(OPT_CLASSLESS_ROUTES))?),
    };
    Ok(Reply {
        kind,
        address,
        server_id: one_addr(OPT_SERVER_ID)?,
        prefix,
        routers: addrs(OPT_ROUTER)?,
        dns: addrs(OPT_DNS)?,
        lease_secs,
        mtu,
        classless_routes,
    })
}

/// The options area as code → value; repeated codes are concatenated (RFC 3396). Stops at the end
/// option; a packet without one is refused.
fn parse_options(mut rest: &[u8]) -> Result<BTreeMap<u8, Vec<u8>>, DecodeError> {
    let mut out: BTreeMap<u8, Vec<u8>> = BTreeMap::new();
    loop {
        let Some((&code, tail)) = rest.split_first() else {
            return Err(DecodeError::NoEnd);
        };
        match code {
            OPT_PAD => rest = tail,
            OPT_END => return Ok(out),
            _ => {
                let (&len, tail) = tail
                    .split_first()
                    .ok_or(DecodeError::TruncatedOption(code))?;
                let len = usize::from(len);
                let value = tail.get(..len).ok_or(DecodeError::TruncatedOption(code))?;
                out.entry(code).or_default().extend_from_slice(value);
                rest = &tail[len..];
            }
        }
    }
}

/// Option 121 (RFC 3442): `width, significant destination octets, router` repeated. Host bits past
/// the width are cleared (the kernel refuses a destination with host bits set). `None` when
/// malformed: a width over 32 or a truncated entry.
pub(crate) fn classless_routes(mut v: &[u8]) -> Option<Vec<Route>> {
    let mut routes = Vec::new();
    while let Some((&width, tail)) = v.split_first() {
        if width > 32 {
            return None;
        }
        let octets = usize::from(width).div_ceil(8);
        let dst_bytes = tail.get(..octets)?;
        let gateway: [u8; 4] = tail.get(octets..octets + 4)?.try_into().ok()?;
        let mut dst = [0u8; 4];
        dst[..octets].copy_from_slice(dst_bytes);
        let mask = u32::MAX.checked_shl(32 - u32::from(width)).unwrap_or(0);
        routes.push(Route {
            dst: Ipv4Addr::from(u32::from_be_bytes(dst) & mask),
            prefix: width,
            gateway: Ipv4Addr::from(gateway),
        });
        v = &tail[octets + 4..];
    }
    Some(routes)
}

/// The prefix length of a contiguous netmask (`None` for 255.0.255.0 and the like).
pub(crate) fn mask_prefix(mask: Ipv4Addr) -> Option<u8> {
    let m = u32::from(mask);
    let ones = m.leading_ones();
    (m.checked_shl(ones).unwrap_or(0) == 0).then_some(ones as u8)
}

/// An address a host may use as its own: not 0.0.0.0, broadcast, loopback or multicast.
fn usable_unicast(a: Ipv4Addr) -> bool {
    !(a.is_unspecified() || a.is_broadcast() || a.is_loopback() || a.is_multicast())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) const MAC: [u8; 6] = [0x52, 0x54, 0x00, 0x12, 0x34, 0x56];
    pub(crate) const XID: u32 = 0x1234_5678;

    /// A server reply built field by field from RFC 2131's layout, independently of [`Request`].
    pub(crate) fn reply(kind: u8, xid: u32, yiaddr: [u8; 4], options: &[(u8, &[u8])]) -> Vec<u8> {
        let mut p = vec![0u8; 240];
        p[0] = 2;
        p[1] = 1;
        p[2] = 6;
        p[4..8].copy_from_slice(&xid.to_be_bytes());
        p[16..20].copy_from_slice(&yiaddr);
        p[28..34].copy_from_slice(&MAC);
        p[236..240].copy_from_slice(&[0x63, 0x82, 0x53, 0x63]);
        p.extend_from_slice(&[53, 1, kind]);
        for (code, value) in options {
            p.push(*code);
            p.push(value.len() as u8);
            p.extend_from_slice(value);
        }
        p.push(255);
        p
    }

    /// What QEMU's user network (slirp) answers: 10.0.2.15/24, router 10.0.2.2, DNS 10.0.2.3.
    pub(crate) fn slirp(kind: u8, xid: u32) -> Vec<u8> {
        reply(
            kind,
            xid,
            [10, 0, 2, 15],
            &[
                (54, &[10, 0, 2, 2]),
                (51, &86400u32.to_be_bytes()),
                (1, &[255, 255, 255, 0]),
                (3, &[10, 0, 2, 2]),
                (6, &[10, 0, 2, 3]),
            ],
        )
    }

    #[test]
    fn decodes_a_slirp_ack() {
        let r = decode(&slirp(5, XID), XID, &MAC).expect("ack");
        assert_eq!(r.kind, MessageType::Ack);
        assert_eq!(r.address, Ipv4Addr::new(10, 0, 2, 15));
        assert_eq!(r.prefix, Some(24));
        assert_eq!(r.server_id, Some(Ipv4Addr::new(10, 0, 2, 2)));
        assert_eq!(r.dns, vec![Ipv4Addr::new(10, 0, 2, 3)]);
        assert_eq!(r.lease_secs, Some(86400));
        assert_eq!(r.mtu, None);
        assert_eq!(
            r.routes(),
            vec![Route {
                dst: Ipv4Addr::UNSPECIFIED,
                prefix: 0,
                gateway: Ipv4Addr::new(10, 0, 2, 2)
            }]
        );
    }

    #[test]
    fn request_layout_follows_rfc_2131() {
        let req = Request {
            kind: MessageType::Request,
            xid: XID,
            mac: MAC,
            secs: 3,
            requested: Some((Ipv4Addr::new(10, 0, 2, 15), Ipv4Addr::new(10, 0, 2, 2))),
        }
        .encode();
        assert_eq!(req.len(), MIN_REQUEST_LEN);
        assert_eq!(&req[..4], &[1, 1, 6, 0]);
        assert_eq!(&req[4..8], &XID.to_be_bytes());
        assert_eq!(&req[8..10], &3u16.to_be_bytes());
        assert_eq!(&req[10..12], &[0x80, 0], "broadcast flag");
        assert_eq!(&req[28..34], &MAC);
        assert_eq!(&req[236..240], &MAGIC_COOKIE);
        let opts = parse_options(&req[240..]).expect("options");
        assert_eq!(opts[&53], vec![3]);
        assert_eq!(opts[&50], vec![10, 0, 2, 15]);
        assert_eq!(opts[&54], vec![10, 0, 2, 2]);
        assert_eq!(opts[&61], vec![1, 0x52, 0x54, 0, 0x12, 0x34, 0x56]);
        assert!(opts[&55].contains(&121) && opts[&55].contains(&26));
        // A DISCOVER carries no requested address.
        let disc = Request {
            kind: MessageType::Discover,
            xid: XID,
            mac: MAC,
            secs: 0,
            requested: None,
        }
        .encode();
        let opts = parse_options(&disc[240..]).expect("options");
        assert_eq!(opts[&53], vec![1]);
        assert!(!opts.contains_key(&50) && !opts.contains_key(&54));
    }

    #[test]
    fn round_trip_through_the_server_side_layout() {
        // A request, turned into a reply the way a server does (op 2, yiaddr, options), decodes.
        let mut p = Request {
            kind: MessageType::Discover,
            xid: XID,
            mac: MAC,
            secs: 0,
            requested: None,
        }
        .encode();
        p[0] = BOOTREPLY;
        p[16..20].copy_from_slice(&[192, 168, 1, 9]);
        p.truncate(240);
        p.extend_from_slice(&[53, 1, 2, 26, 2, 0x05, 0xb4, 255]);
        let r = decode(&p, XID, &MAC).expect("offer");
        assert_eq!(r.kind, MessageType::Offer);
        assert_eq!(r.address, Ipv4Addr::new(192, 168, 1, 9));
        assert_eq!(r.mtu, Some(1460));
        assert!(r.routes().is_empty(), "no router, no routes");
    }

    #[test]
    fn rfc_3442_destination_descriptors() {
        // The table in RFC 3442 section 2, each with router 10.0.0.1.
        let cases: &[(&[u8], [u8; 4], u8)] = &[
            (&[0], [0, 0, 0, 0], 0),
            (&[8, 10], [10, 0, 0, 0], 8),
            (&[24, 10, 0, 0], [10, 0, 0, 0], 24),
            (&[16, 10, 17], [10, 17, 0, 0], 16),
            (&[24, 10, 27, 129], [10, 27, 129, 0], 24),
            (&[25, 10, 229, 0, 128], [10, 229, 0, 128], 25),
            (&[32, 10, 198, 122, 47], [10, 198, 122, 47], 32),
        ];
        let mut all = Vec::new();
        for (desc, dst, prefix) in cases {
            let mut v = desc.to_vec();
            v.extend_from_slice(&[10, 0, 0, 1]);
            all.extend_from_slice(&v);
            let routes = classless_routes(&v).expect("valid");
            assert_eq!(
                routes,
                vec![Route {
                    dst: Ipv4Addr::from(*dst),
                    prefix: *prefix,
                    gateway: Ipv4Addr::new(10, 0, 0, 1)
                }]
            );
        }
        assert_eq!(classless_routes(&all).expect("all").len(), cases.len());
        assert_eq!(classless_routes(&[]), Some(vec![]));
    }

    #[test]
    fn rfc_3442_malformed_and_host_bits() {
        assert_eq!(classless_routes(&[33, 1, 2, 3, 4, 5, 0, 0, 0, 1]), None);
        assert_eq!(
            classless_routes(&[24, 10, 0]),
            None,
            "truncated destination"
        );
        assert_eq!(
            classless_routes(&[8, 10, 0, 0, 1]),
            None,
            "truncated router"
        );
        let r = classless_routes(&[9, 10, 255, 1, 1, 1, 1]).expect("valid");
        assert_eq!(r[0].dst, Ipv4Addr::new(10, 128, 0, 0), "host bits cleared");
    }

    #[test]
    fn gcp_style_lease_classless_routes_replace_the_router() {
        // GCP: a /32 address, MTU 1460, an on-link route to the gateway and the default via it.
        let routes: &[u8] = &[32, 10, 128, 0, 1, 0, 0, 0, 0, 0, 10, 128, 0, 1];
        let p = reply(
            5,
            XID,
            [10, 128, 0, 7],
            &[
                (1, &[255, 255, 255, 255]),
                (3, &[10, 9, 9, 9]),
                (26, &1460u16.to_be_bytes()),
                (121, routes),
            ],
        );
        let r = decode(&p, XID, &MAC).expect("ack");
        assert_eq!(r.prefix, Some(32));
        assert_eq!(r.mtu, Some(1460));
        assert_eq!(
            r.routes(),
            vec![
                Route {
                    dst: Ipv4Addr::new(10, 128, 0, 1),
                    prefix: 32,
                    gateway: Ipv4Addr::UNSPECIFIED
                },
                Route {
                    dst: Ipv4Addr::UNSPECIFIED,
                    prefix: 0,
                    gateway: Ipv4Addr::new(10, 128, 0, 1)
                },
            ],
            "option 121 wins over the router option"
        );
    }

    #[test]
    fn split_options_are_concatenated() {
        let p = reply(
            5,
            XID,
            [10, 0, 0, 5],
            &[(6, &[1, 1, 1, 1]), (6, &[8, 8, 8, 8])],
        );
        let r = decode(&p, XID, &MAC).expect("ack");
        assert_eq!(
            r.dns,
            vec![Ipv4Addr::new(1, 1, 1, 1), Ipv4Addr::new(8, 8, 8, 8)]
        );
    }

    #[test]
    fn nak_decodes_without_an_address() {
        let p = reply(6, XID, [0, 0, 0, 0], &[(54, &[10, 0, 2, 2])]);
        assert_eq!(decode(&p, XID, &MAC).expect("nak").kind, MessageType::Nak);
    }

    #[test]
    fn refused_packets() {
        let good = slirp(5, XID);
        assert!(decode(&good, XID, &MAC).is_ok());
        // Every truncation of a good packet is refused, none panics.
        for n in 0..good.len() {
            assert!(decode(&good[..n], XID, &MAC).is_err(), "truncated to {n}");
        }
        assert!(matches!(
            decode(&good, XID + 1, &MAC),
            Err(DecodeError::OtherXid { .. })
        ));
        assert_eq!(decode(&good, XID, &[0; 6]), Err(DecodeError::OtherClient));
        let mut request = good.clone();
        request[0] = 1;
        assert_eq!(decode(&request, XID, &MAC), Err(DecodeError::NotReply));
        let mut cookie = good.clone();
        cookie[236] = 0;
        assert_eq!(decode(&cookie, XID, &MAC), Err(DecodeError::NoCookie));
        type Options<'a> = &'a [(u8, &'a [u8])];
        let cases: &[(Options, DecodeError)] = &[
            (&[(1, &[255, 0, 255, 0])], DecodeError::BadOption(1)),
            (&[(1, &[255, 255])], DecodeError::BadOption(1)),
            (&[(3, &[10, 0, 2])], DecodeError::BadOption(3)),
            (&[(6, &[])], DecodeError::BadOption(6)),
            (&[(26, &[5])], DecodeError::BadOption(26)),
            (&[(51, &[0, 0, 1])], DecodeError::BadOption(51)),
            (&[(54, &[10, 0, 2, 2, 1])], DecodeError::BadOption(54)),
            (&[(121, &[40, 1, 2, 3, 4, 5])], DecodeError::BadOption(121)),
        ];
        for (options, want) in cases {
            let p = reply(5, XID, [10, 0, 2, 15], options);
            assert_eq!(decode(&p, XID, &MAC).as_ref(), Err(want), "{options:?}");
        }
        for bad in [
            [0, 0, 0, 0],
            [255, 255, 255, 255],
            [127, 0, 0, 1],
            [224, 0, 0, 1],
        ] {
            let p = reply(5, XID, bad, &[]);
            assert!(matches!(
                decode(&p, XID, &MAC),
                Err(DecodeError::BadAddress(_))
            ));
        }
        let mut no_type = reply(5, XID, [10, 0, 2, 15], &[]);
        no_type[242] = 9; // message type 9: not one we know
        assert_eq!(decode(&no_type, XID, &MAC), Err(DecodeError::MessageType));
        let mut no_end = good.clone();
        no_end.pop();
        assert_eq!(decode(&no_end, XID, &MAC), Err(DecodeError::NoEnd));
    }

    #[test]
    fn tiny_mtu_is_ignored() {
        let p = reply(5, XID, [10, 0, 2, 15], &[(26, &67u16.to_be_bytes())]);
        assert_eq!(decode(&p, XID, &MAC).expect("ack").mtu, None);
    }

    #[test]
    fn garbage_never_panics() {
        // A cheap deterministic fuzz: random bytes after a valid header and cookie.
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        for _ in 0..2000 {
            let mut p = slirp(5, XID)[..240].to_vec();
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let len = (state % 64) as usize;
            for i in 0..len {
                p.push((state >> (i % 8 * 8)) as u8 ^ i as u8);
            }
            let _ = decode(&p, XID, &MAC);
        }
    }

    #[test]
    fn masks() {
        assert_eq!(mask_prefix(Ipv4Addr::new(255, 255, 255, 0)), Some(24));
        assert_eq!(mask_prefix(Ipv4Addr::new(255, 255, 255, 255)), Some(32));
        assert_eq!(mask_prefix(Ipv4Addr::new(0, 0, 0, 0)), Some(0));
        assert_eq!(mask_prefix(Ipv4Addr::new(255, 255, 128, 0)), Some(17));
        assert_eq!(mask_prefix(Ipv4Addr::new(255, 0, 255, 0)), None);
        assert_eq!(mask_prefix(Ipv4Addr::new(0, 0, 0, 255)), None);
    }
}
