//! Just enough rtnetlink to bring up the guest's network: link up, its MTU, one IPv4 address,
//! IPv4 routes (a DHCP lease's). Written by hand on nix's safe socket API so PID 1 needs no `ip` binary and no extra crate.
//!
//! Message layouts: `linux/netlink.h`, `linux/rtnetlink.h`, `linux/if_addr.h` (rtnetlink(7)).

use std::io;
use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, OwnedFd};

use nix::sys::socket::{
    bind, recv, send, socket, AddressFamily, MsgFlags, NetlinkAddr, SockFlag, SockProtocol,
    SockType,
};

const RTM_NEWLINK: u16 = 16;
const RTM_NEWADDR: u16 = 20;
const RTM_NEWROUTE: u16 = 24;
const NLMSG_ERROR: u16 = 2;
const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_ACK: u16 = 0x4;
const NLM_F_EXCL: u16 = 0x200;
const NLM_F_CREATE: u16 = 0x400;
const AF_INET: u8 = 2;
const IFF_UP: u32 = 1;
const IFA_ADDRESS: u16 = 1;
const IFA_LOCAL: u16 = 2;
const IFLA_MTU: u16 = 4;
const RTA_DST: u16 = 1;
const RTA_OIF: u16 = 4;
const RTA_GATEWAY: u16 = 5;
const RT_TABLE_MAIN: u8 = 254;
const RTPROT_DHCP: u8 = 16;
const RT_SCOPE_UNIVERSE: u8 = 0;
const RT_SCOPE_LINK: u8 = 253;
const RTN_UNICAST: u8 = 1;
/// The gateway is on this link even outside the interface's subnet (GCP leases a /32 and routes
/// through a gateway that only option 121's on-link route makes reachable).
const RTNH_F_ONLINK: u32 = 4;

/// A route-netlink socket that sends one request at a time and waits for its acknowledgement.
pub(crate) struct Netlink {
    fd: OwnedFd,
    seq: u32,
}

impl Netlink {
    pub(crate) fn open() -> io::Result<Self> {
        let fd = socket(
            AddressFamily::Netlink,
            SockType::Raw,
            SockFlag::SOCK_CLOEXEC,
            SockProtocol::NetlinkRoute,
        )?;
        bind(fd.as_raw_fd(), &NetlinkAddr::new(0, 0))?;
        Ok(Self { fd, seq: 0 })
    }

    /// Sets the interface administratively up.
    pub(crate) fn link_up(&mut self, index: u32) -> io::Result<()> {
        let mut body = Vec::with_capacity(16);
        body.extend_from_slice(&[0, 0]); // family AF_UNSPEC, pad
        body.extend_from_slice(&0u16.to_ne_bytes()); // type
        body.extend_from_slice(&index.to_ne_bytes());
        body.extend_from_slice(&IFF_UP.to_ne_bytes()); // flags
        body.extend_from_slice(&IFF_UP.to_ne_bytes()); // change mask
        self.request(RTM_NEWLINK, 0, &body)
    }

    /// Sets the interface's MTU.
    pub(crate) fn set_mtu(&mut self, index: u32, mtu: u32) -> io::Result<()> {
        let mut body = Vec::with_capacity(24);
        body.extend_from_slice(&[0, 0]); // family AF_UNSPEC, pad
        body.extend_from_slice(&0u16.to_ne_bytes()); // type
        body.extend_from_slice(&index.to_ne_bytes());
        body.extend_from_slice(&0u32.to_ne_bytes()); // flags
        body.extend_from_slice(&0u32.to_ne_bytes()); // change mask: no flag changes
        attr(&mut body, IFLA_MTU, &mtu.to_ne_bytes());
        self.request(RTM_NEWLINK, 0, &body)
    }

    /// Adds `addr/prefix` to the interface.
    pub(crate) fn add_address(&mut self, index: u32, addr: Ipv4Addr, prefix: u8) -> io::Result<()> {
        let mut body = vec![AF_INET, prefix, 0, RT_SCOPE_UNIVERSE];
        body.extend_from_slice(&index.to_ne_bytes());
        attr(&mut body, IFA_LOCAL, &addr.octets());
        attr(&mut body, IFA_ADDRESS, &addr.octets());
        self.request(RTM_NEWADDR, NLM_F_CREATE | NLM_F_EXCL, &body)
    }

    /// Adds the route `dst/prefix` on the interface: through `gateway` (marked on-link), or, with
    /// no gateway, directly on the link.
    pub(crate) fn add_route(
        &mut self,
        index: u32,
        dst: Ipv4Addr,
        prefix: u8,
        gateway: Option<Ipv4Addr>,
    ) -> io::Result<()> {
        self.request(
            RTM_NEWROUTE,
            NLM_F_CREATE | NLM_F_EXCL,
            &route_body(index, dst, prefix, gateway),
        )
    }

    fn request(&mut self, kind: u16, flags: u16, body: &[u8]) -> io::Result<()> {
        self.seq += 1;
        let len = u32::try_from(16 + body.len()).map_err(io::Error::other)?;
        let mut msg = Vec::with_capacity(16 + body.len());
        msg.extend_from_slice(&len.to_ne_bytes());
        msg.extend_from_slice(&kind.to_ne_bytes());
        msg.extend_from_slice(&(flags | NLM_F_REQUEST | NLM_F_ACK).to_ne_bytes());
        msg.extend_from_slice(&self.seq.to_ne_bytes());
        msg.extend_from_slice(&0u32.to_ne_bytes()); // port id: the kernel fills it in
        msg.extend_from_slice(body);
        send(self.fd.as_raw_fd(), &msg, MsgFlags::empty())?;
        let mut buf = [0u8; 4096];
        let n = recv(self.fd.as_raw_fd(), &mut buf, MsgFlags::empty())?;
        ack_status(&buf[..n], self.seq)
    }
}

/// An rtmsg (`linux/rtnetlink.h`) with its attributes.
fn route_body(index: u32, dst: Ipv4Addr, prefix: u8, gateway: Option<Ipv4Addr>) -> Vec<u8> {
    let scope = if gateway.is_some() {
        RT_SCOPE_UNIVERSE
    } else {
        RT_SCOPE_LINK
    };
    let mut body = vec![
        AF_INET,
        prefix, // dst_len
        0,      // src_len
        0,      // tos
        RT_TABLE_MAIN,
        RTPROT_DHCP,
        scope,
        RTN_UNICAST,
    ];
    let flags = if gateway.is_some() { RTNH_F_ONLINK } else { 0 };
    body.extend_from_slice(&flags.to_ne_bytes());
    if prefix > 0 {
        attr(&mut body, RTA_DST, &dst.octets());
    }
    if let Some(gateway) = gateway {
        attr(&mut body, RTA_GATEWAY, &gateway.octets());
    }
    attr(&mut body, RTA_OIF, &index.to_ne_bytes());
    body
}

/// Appends one rtattr (length, type, value, padding to 4 bytes).
fn attr(out: &mut Vec<u8>, kind: u16, value: &[u8]) {
    let len = 4 + value.len();
    out.extend_from_slice(&(len as u16).to_ne_bytes());
    out.extend_from_slice(&kind.to_ne_bytes());
    out.extend_from_slice(value);
    out.resize(out.len() + (4 - len % 4) % 4, 0);
}

/// Reads the kernel's answer: an NLMSG_ERROR whose code is 0 (ack) or a negative errno.
fn ack_status(reply: &[u8], seq: u32) -> io::Result<()> {
    let field = |at: usize, n: usize| reply.get(at..at + n);
    let (Some(kind), Some(rseq), Some(code)) = (field(4, 2), field(8, 4), field(16, 4)) else {
        return Err(io::Error::other("short netlink reply"));
    };
    let kind = u16::from_ne_bytes([kind[0], kind[1]]);
    let rseq = u32::from_ne_bytes([rseq[0], rseq[1], rseq[2], rseq[3]]);
    if kind != NLMSG_ERROR || rseq != seq {
        return Err(io::Error::other(format!(
            "unexpected netlink reply type {kind} seq {rseq}"
        )));
    }
    match i32::from_ne_bytes([code[0], code[1], code[2], code[3]]) {
        0 => Ok(()),
        errno => Err(io::Error::from_raw_os_error(-errno)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attributes_are_padded_to_four_bytes() {
        let mut out = Vec::new();
        attr(&mut out, RTA_GATEWAY, &[10, 0, 2, 2]);
        assert_eq!(out.len(), 8);
        attr(&mut out, 9, &[1]);
        assert_eq!(out.len(), 16);
        assert_eq!(&out[8..10], &5u16.to_ne_bytes());
    }

    #[test]
    fn route_messages() {
        // Default route via a gateway: universe scope, on-link flag, no RTA_DST.
        let b = route_body(
            2,
            Ipv4Addr::UNSPECIFIED,
            0,
            Some(Ipv4Addr::new(10, 0, 2, 2)),
        );
        assert_eq!(
            &b[..8],
            &[AF_INET, 0, 0, 0, RT_TABLE_MAIN, RTPROT_DHCP, 0, RTN_UNICAST]
        );
        assert_eq!(&b[8..12], &RTNH_F_ONLINK.to_ne_bytes());
        assert_eq!(b.len(), 12 + 8 + 8, "gateway and oif only");
        assert_eq!(&b[14..16], &RTA_GATEWAY.to_ne_bytes());
        // On-link host route: link scope, no flag, no gateway, with RTA_DST.
        let b = route_body(2, Ipv4Addr::new(10, 128, 0, 1), 32, None);
        assert_eq!(
            &b[..8],
            &[
                AF_INET,
                32,
                0,
                0,
                RT_TABLE_MAIN,
                RTPROT_DHCP,
                RT_SCOPE_LINK,
                1
            ]
        );
        assert_eq!(&b[8..12], &0u32.to_ne_bytes());
        assert_eq!(&b[14..16], &RTA_DST.to_ne_bytes());
        assert_eq!(&b[16..20], &[10, 128, 0, 1]);
        assert_eq!(&b[22..24], &RTA_OIF.to_ne_bytes());
        assert_eq!(b.len(), 12 + 8 + 8);
    }

    fn reply(kind: u16, seq: u32, code: i32) -> Vec<u8> {
        let mut r = 36u32.to_ne_bytes().to_vec();
        r.extend_from_slice(&kind.to_ne_bytes());
        r.extend_from_slice(&0u16.to_ne_bytes());
        r.extend_from_slice(&seq.to_ne_bytes());
        r.extend_from_slice(&0u32.to_ne_bytes());
        r.extend_from_slice(&code.to_ne_bytes());
        r.extend_from_slice(&[0; 16]);
        r
    }

    #[test]
    fn ack_zero_is_success_and_errno_is_reported() {
        assert!(ack_status(&reply(NLMSG_ERROR, 3, 0), 3).is_ok());
        let err = ack_status(&reply(NLMSG_ERROR, 3, -17), 3).expect_err("EEXIST");
        assert_eq!(err.raw_os_error(), Some(17));
        assert!(
            ack_status(&reply(NLMSG_ERROR, 4, 0), 3).is_err(),
            "wrong seq"
        );
        assert!(ack_status(&reply(3, 3, 0), 3).is_err(), "not an ack");
        assert!(ack_status(&[0; 10], 3).is_err(), "short");
    }
}
