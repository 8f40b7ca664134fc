//! The DHCP exchange (RFC 2131, 3.1): DISCOVER → OFFER → REQUEST → ACK, broadcast both ways
//! because the interface has no address yet. Retries with a doubling wait per step, a bound on
//! rounds (a server that NAKs every REQUEST must not make us spin) and one total deadline; the
//! error says which step ran out. The socket is behind [`Transport`] so the state machine is
//! tested without a network.

use std::io;
use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use anyhow::Context;
use nix::sys::socket::{
    bind, setsockopt, socket, sockopt, AddressFamily, SockFlag, SockType, SockaddrIn,
};

use super::dhcp::{self, MessageType, Reply, Request};

/// One UDP datagram at a time to and from the DHCP server.
pub(crate) trait Transport {
    fn send(&mut self, packet: &[u8]) -> io::Result<()>;
    /// One datagram from the server port, or `None` once `deadline` passes.
    fn recv(&mut self, deadline: Instant) -> io::Result<Option<Vec<u8>>>;
}

/// How long to try.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Timing {
    /// The whole exchange, all retries included.
    pub total: Duration,
    /// The first wait for an answer; doubled after each silence up to `max_wait`.
    pub first_wait: Duration,
    pub max_wait: Duration,
}

impl Default for Timing {
    /// Cloud and QEMU servers answer in milliseconds; the retries cover a link whose carrier
    /// comes up a moment after the interface does (RFC 2131 suggests 4 s, doubling: too slow for a
    /// boot). 30 s in all: a VM without a lease cannot do its job anyway.
    fn default() -> Self {
        Self {
            total: Duration::from_secs(30),
            first_wait: Duration::from_millis(500),
            max_wait: Duration::from_secs(4),
        }
    }
}

/// Rounds (DISCOVER … ACK/NAK) before giving up even with time left.
const MAX_ROUNDS: u32 = 12;
/// REQUESTs per round before starting over with a DISCOVER.
const REQUEST_TRIES: u32 = 3;

/// Runs the exchange and returns the server's ACK.
pub(crate) fn obtain(
    t: &mut impl Transport,
    mac: [u8; 6],
    timing: Timing,
    mut new_xid: impl FnMut() -> u32,
) -> anyhow::Result<Reply> {
    let started = Instant::now();
    let deadline = started + timing.total;
    let secs = || u16::try_from(started.elapsed().as_secs()).unwrap_or(u16::MAX);
    let mut wait = timing.first_wait;
    // The furthest step any round reached and failed at: what the error reports.
    let mut failed = "no DHCPOFFER".to_string();
    let mut rounds = 0;
    for round in 1..=MAX_ROUNDS {
        rounds = round;
        if Instant::now() >= deadline {
            break;
        }
        let xid = new_xid();
        let discover = Request {
            kind: MessageType::Discover,
            xid,
            mac,
            secs: secs(),
            requested: None,
        };
        let until = deadline.min(Instant::now() + wait);
        // A NIC whose carrier is not up yet may refuse to send (ENETDOWN): wait, try again.
        if let Err(e) = t.send(&discover.encode()) {
            tracing::debug!(error = %e, "sending DHCPDISCOVER failed");
            failed = format!("sending DHCPDISCOVER: {e}");
            std::thread::sleep(until.saturating_duration_since(Instant::now()));
            wait = (wait * 2).min(timing.max_wait);
            continue;
        }
        let Some(offer) = wait_for(t, xid, &mac, until, |r| {
            r.kind == MessageType::Offer && r.server_id.is_some()
        })?
        else {
            if failed.starts_with("sending") {
                failed = "no DHCPOFFER".into();
            }
            wait = (wait * 2).min(timing.max_wait);
            continue;
        };
        let server = offer.server_id.unwrap_or(Ipv4Addr::UNSPECIFIED);
        tracing::debug!(%server, address = %offer.address, "DHCPOFFER");
        failed = format!(
            "no DHCPACK from {server} for {} (round {round})",
            offer.address
        );
        let mut request_wait = timing.first_wait;
        for _ in 0..REQUEST_TRIES {
            let request = Request {
                kind: MessageType::Request,
                xid,
                mac,
                secs: secs(),
                requested: Some((offer.address, server)),
            };
            let until = deadline.min(Instant::now() + request_wait);
            if let Err(e) = t.send(&request.encode()) {
                tracing::debug!(error = %e, "sending DHCPREQUEST failed");
                std::thread::sleep(until.saturating_duration_since(Instant::now()));
                request_wait = (request_wait * 2).min(timing.max_wait);
                continue;
            }
            // Only the chosen server's answer counts (an ACK must carry its server id; one
            // without it is taken as the chosen server's, as some servers omit it in ACKs).
            let answer = wait_for(t, xid, &mac, until, |r| {
                matches!(r.kind, MessageType::Ack | MessageType::Nak)
                    && r.server_id.is_none_or(|s| s == server)
            })?;
            match answer {
                Some(ack) if ack.kind == MessageType::Ack => return Ok(ack),
                Some(_) => {
                    tracing::warn!(%server, address = %offer.address, "DHCPNAK: starting over");
                    failed = format!(
                        "DHCPNAK from {server} for {} (round {round})",
                        offer.address
                    );
                    break;
                }
                None => request_wait = (request_wait * 2).min(timing.max_wait),
            }
            if Instant::now() >= deadline {
                break;
            }
        }
        wait = (wait * 2).min(timing.max_wait);
    }
    anyhow::bail!(
        "DHCP gave no lease in {:.1} s ({rounds} rounds): {failed}",
        started.elapsed().as_secs_f64()
    )
}

/// Reads datagrams until one decodes as ours and `wanted` accepts it, or `until` passes. Anything
/// else (another transaction, another client, garbage) is skipped.
fn wait_for(
    t: &mut impl Transport,
    xid: u32,
    mac: &[u8; 6],
    until: Instant,
    wanted: impl Fn(&Reply) -> bool,
) -> anyhow::Result<Option<Reply>> {
    while let Some(packet) = t.recv(until).context("receiving from the DHCP socket")? {
        match dhcp::decode(&packet, xid, mac) {
            Ok(reply) if wanted(&reply) => return Ok(Some(reply)),
            Ok(reply) => tracing::debug!(kind = ?reply.kind, "DHCP reply skipped"),
            Err(e) => tracing::debug!(error = %e, "DHCP packet skipped"),
        }
    }
    Ok(None)
}

/// The real transport: UDP port 68 on one interface, broadcast to port 67.
pub(crate) struct UdpTransport {
    socket: UdpSocket,
}

impl UdpTransport {
    /// Binds 0.0.0.0:68 to `interface` (SO_BINDTODEVICE: replies and sends stay on it even
    /// though no address or route exists yet) with SO_BROADCAST.
    pub(crate) fn bind(interface: &str) -> anyhow::Result<Self> {
        let fd = socket(
            AddressFamily::Inet,
            SockType::Datagram,
            SockFlag::SOCK_CLOEXEC,
            None,
        )
        .context("DHCP socket")?;
        setsockopt(&fd, sockopt::BindToDevice, &interface.into())
            .with_context(|| format!("SO_BINDTODEVICE {interface}"))?;
        setsockopt(&fd, sockopt::Broadcast, &true).context("SO_BROADCAST")?;
        setsockopt(&fd, sockopt::ReuseAddr, &true).context("SO_REUSEADDR")?;
        let any = SockaddrIn::from(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, dhcp::CLIENT_PORT));
        bind(fd.as_raw_fd(), &any).context("binding UDP port 68")?;
        Ok(Self {
            socket: UdpSocket::from(fd),
        })
    }
}

impl Transport for UdpTransport {
    fn send(&mut self, packet: &[u8]) -> io::Result<()> {
        let to = SocketAddrV4::new(Ipv4Addr::BROADCAST, dhcp::SERVER_PORT);
        self.socket.send_to(packet, to).map(|_| ())
    }

    fn recv(&mut self, deadline: Instant) -> io::Result<Option<Vec<u8>>> {
        // Room for any datagram a 1500-byte (or jumbo) link delivers; longer ones are truncated
        // and then fail to decode.
        let mut buf = vec![0u8; 9000];
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(None);
            }
            self.socket.set_read_timeout(Some(left))?;
            match self.socket.recv_from(&mut buf) {
                Ok((n, from)) if from.port() == dhcp::SERVER_PORT => {
                    return Ok(Some(buf[..n].to_vec()))
                }
                Ok(_) => continue,
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    return Ok(None)
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
    }
}

/// A transaction id from the kernel's random pool (xids only need to differ between clients and
/// rounds; the clock stands in if /dev/urandom cannot be read).
pub(crate) fn random_xid() -> u32 {
    let mut b = [0u8; 4];
    match std::fs::File::open("/dev/urandom").and_then(|mut f| io::Read::read_exact(&mut f, &mut b))
    {
        Ok(()) => u32::from_ne_bytes(b),
        Err(_) => std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos() ^ d.as_secs() as u32)
            .unwrap_or(0x5eed_1234),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;

    use super::*;
    use crate::guest::dhcp::tests::{reply, slirp, MAC};

    /// The server's answer to one client packet, given the packet's xid.
    type Answer = Box<dyn Fn(u32) -> Vec<Vec<u8>>>;

    /// A transport whose sends fail.
    struct Down;

    impl Transport for Down {
        fn send(&mut self, _packet: &[u8]) -> io::Result<()> {
            Err(io::Error::from_raw_os_error(100)) // ENETDOWN
        }

        fn recv(&mut self, _deadline: Instant) -> io::Result<Option<Vec<u8>>> {
            Ok(None)
        }
    }

    #[test]
    fn send_errors_are_retried_then_named() {
        let err = obtain(&mut Down, MAC, fast(), xids()).expect_err("no lease");
        assert!(err.to_string().contains("sending DHCPDISCOVER"), "{err}");
        assert!(err.to_string().contains("(12 rounds)"), "{err}");
    }

    /// A scripted server: for each packet the client sends, the replies to hand back (built from
    /// the request's xid), then silence.
    struct Script {
        answers: VecDeque<Answer>,
        inbox: VecDeque<Vec<u8>>,
        sent: Vec<(MessageType, u32)>,
    }

    impl Script {
        fn new(answers: Vec<Answer>) -> Self {
            Self {
                answers: answers.into(),
                inbox: VecDeque::new(),
                sent: Vec::new(),
            }
        }
    }

    impl Transport for Script {
        fn send(&mut self, packet: &[u8]) -> io::Result<()> {
            let xid = u32::from_be_bytes(packet[4..8].try_into().expect("xid"));
            let kind = match packet[242] {
                1 => MessageType::Discover,
                3 => MessageType::Request,
                k => panic!("client sent message type {k}"),
            };
            self.sent.push((kind, xid));
            if let Some(answer) = self.answers.pop_front() {
                self.inbox.extend(answer(xid));
            }
            Ok(())
        }

        fn recv(&mut self, _deadline: Instant) -> io::Result<Option<Vec<u8>>> {
            Ok(self.inbox.pop_front())
        }
    }

    fn fast() -> Timing {
        Timing {
            total: Duration::from_millis(200),
            first_wait: Duration::from_millis(1),
            max_wait: Duration::from_millis(2),
        }
    }

    fn xids() -> impl FnMut() -> u32 {
        let mut n = 100;
        move || {
            n += 1;
            n
        }
    }

    #[test]
    fn discover_offer_request_ack() {
        let mut s = Script::new(vec![
            Box::new(|xid| vec![slirp(2, xid)]),
            Box::new(|xid| vec![slirp(5, xid)]),
        ]);
        let lease = obtain(&mut s, MAC, fast(), xids()).expect("lease");
        assert_eq!(lease.kind, MessageType::Ack);
        assert_eq!(lease.address, Ipv4Addr::new(10, 0, 2, 15));
        assert_eq!(
            s.sent,
            vec![(MessageType::Discover, 101), (MessageType::Request, 101)]
        );
    }

    #[test]
    fn wrong_xid_and_garbage_are_ignored() {
        let mut s = Script::new(vec![
            Box::new(|xid| vec![b"junk".to_vec(), slirp(2, xid + 1), slirp(2, xid)]),
            Box::new(|xid| vec![slirp(5, xid ^ 0xffff), slirp(5, xid)]),
        ]);
        let lease = obtain(&mut s, MAC, fast(), xids()).expect("lease");
        assert_eq!(lease.address, Ipv4Addr::new(10, 0, 2, 15));
        // Negative twin: only the wrong-xid answers, so no lease.
        let mut s = Script::new(vec![
            Box::new(|xid| vec![slirp(2, xid + 1)]),
            Box::new(|xid| vec![slirp(2, xid + 1)]),
        ]);
        let err = obtain(&mut s, MAC, fast(), xids()).expect_err("no lease");
        assert!(err.to_string().contains("no DHCPOFFER"), "{err}");
    }

    #[test]
    fn nak_starts_over_with_a_new_xid() {
        let nak = |xid| reply(6, xid, [0, 0, 0, 0], &[(54, &[10, 0, 2, 2])]);
        let mut s = Script::new(vec![
            Box::new(|xid| vec![slirp(2, xid)]),
            Box::new(move |xid| vec![nak(xid)]),
            Box::new(|xid| vec![slirp(2, xid)]),
            Box::new(|xid| vec![slirp(5, xid)]),
        ]);
        obtain(&mut s, MAC, fast(), xids()).expect("lease after a NAK");
        let kinds: Vec<_> = s.sent.iter().map(|(k, _)| *k).collect();
        assert_eq!(
            kinds,
            [
                MessageType::Discover,
                MessageType::Request,
                MessageType::Discover,
                MessageType::Request
            ]
        );
        assert_ne!(s.sent[0].1, s.sent[2].1, "a new transaction after the NAK");
    }

    #[test]
    fn nak_forever_fails_naming_the_nak() {
        let answers: Vec<Answer> = (0..2 * MAX_ROUNDS)
            .map(|i| -> Answer {
                if i % 2 == 0 {
                    Box::new(|xid| vec![slirp(2, xid)])
                } else {
                    Box::new(|xid| vec![reply(6, xid, [0, 0, 0, 0], &[(54, &[10, 0, 2, 2])])])
                }
            })
            .collect();
        let mut s = Script::new(answers);
        let err = obtain(&mut s, MAC, fast(), xids()).expect_err("no lease");
        assert!(err.to_string().contains("DHCPNAK from 10.0.2.2"), "{err}");
        assert!(
            s.sent.len() <= 2 * MAX_ROUNDS as usize,
            "rounds are bounded"
        );
    }

    #[test]
    fn silent_server_times_out_naming_the_step() {
        let mut s = Script::new(vec![]);
        let started = Instant::now();
        let err = obtain(&mut s, MAC, fast(), xids()).expect_err("no lease");
        assert!(err.to_string().contains("no DHCPOFFER"), "{err}");
        assert!(started.elapsed() < Duration::from_secs(5));
        // An offer but no ACK names the REQUEST step.
        let mut s = Script::new(vec![Box::new(|xid| vec![slirp(2, xid)])]);
        let err = obtain(&mut s, MAC, fast(), xids()).expect_err("no lease");
        assert!(
            err.to_string().contains("no DHCPACK from 10.0.2.2"),
            "{err}"
        );
    }

    #[test]
    fn an_ack_from_another_server_is_ignored() {
        let other = |xid| {
            reply(
                5,
                xid,
                [10, 0, 2, 16],
                &[(54, &[10, 0, 2, 99]), (1, &[255, 255, 255, 0])],
            )
        };
        let mut s = Script::new(vec![
            Box::new(|xid| vec![slirp(2, xid)]),
            Box::new(move |xid| vec![other(xid), slirp(5, xid)]),
        ]);
        let lease = obtain(&mut s, MAC, fast(), xids()).expect("lease");
        assert_eq!(lease.address, Ipv4Addr::new(10, 0, 2, 15));
    }
}
