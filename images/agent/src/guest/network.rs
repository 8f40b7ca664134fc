//! Brings up the guest's network the way every target hands it out: by DHCP on the first
//! Ethernet interface (QEMU's user network runs a DHCP server too, so the tests exercise the same
//! path). The lease's address, MTU and routes go in by rtnetlink, its DNS servers into
//! `/etc/resolv.conf`. There is no static fallback: a VM without a lease cannot reach its relays.
//! Leases are not renewed: cloud networks assign the address to the NIC for the VM's life, jobs
//! are short, and the kernel keeps the address after the lease time.

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use anyhow::Context;

use super::dhcp::{Reply, Route};
use super::dhcp_client::{self, Timing, UdpTransport};
use super::interface;
use super::netlink::Netlink;

/// How long a NIC driver may take to register its interface after its module loads.
const INTERFACE_TIMEOUT: Duration = Duration::from_secs(20);
/// glibc reads at most three nameservers (`MAXNS`).
const MAX_NAMESERVERS: usize = 3;
const RESOLV_CONF: &str = "/etc/resolv.conf";

/// What the network came up with.
pub(crate) struct Network {
    pub interface: String,
    /// The default route's gateway, if the lease gave one.
    pub gateway: Option<Ipv4Addr>,
}

pub(crate) fn up() -> anyhow::Result<Network> {
    let started = Instant::now();
    let mut nl = Netlink::open().context("opening rtnetlink")?;
    let lo = nix::net::if_::if_nametoindex("lo").context("no loopback interface")?;
    nl.link_up(lo).context("lo up")?;
    let nic = interface::wait_for_first(INTERFACE_TIMEOUT)?;
    tracing::info!(interface = %nic.name, index = nic.index, "network interface");
    nl.link_up(nic.index)
        .with_context(|| format!("{} up", nic.name))?;
    let mut socket = UdpTransport::bind(&nic.name)?;
    let lease = dhcp_client::obtain(
        &mut socket,
        nic.mac,
        Timing::default(),
        dhcp_client::random_xid,
    )
    .with_context(|| format!("DHCP on {}", nic.name))?;
    drop(socket);
    apply(&mut nl, nic.index, &lease)
        .with_context(|| format!("applying the lease on {}", nic.name))?;
    if let Some(text) = resolv_conf(&lease.dns) {
        std::fs::write(RESOLV_CONF, text).with_context(|| format!("writing {RESOLV_CONF}"))?;
    }
    let routes = lease.routes();
    let gateway = default_gateway(&routes);
    tracing::info!(
        interface = %nic.name,
        address = %format!("{}/{}", lease.address, lease.prefix.unwrap_or(32)),
        gateway = %gateway.map(|g| g.to_string()).unwrap_or_else(|| "none".into()),
        routes = routes.len(),
        dns = %lease.dns.iter().map(ToString::to_string).collect::<Vec<_>>().join(","),
        mtu = lease.mtu.unwrap_or(0),
        lease_s = lease.lease_secs.unwrap_or(0),
        server = %lease.server_id.map(|s| s.to_string()).unwrap_or_else(|| "?".into()),
        ms = started.elapsed().as_millis() as u64,
        "DHCP lease"
    );
    Ok(Network {
        interface: nic.name,
        gateway,
    })
}

/// MTU first (routes inherit it), then the address (a missing mask means /32: the routes below
/// mark their gateways on-link), then on-link routes before the routes through gateways they make
/// reachable.
fn apply(nl: &mut Netlink, index: u32, lease: &Reply) -> anyhow::Result<()> {
    if let Some(mtu) = lease.mtu {
        nl.set_mtu(index, u32::from(mtu))
            .with_context(|| format!("MTU {mtu}"))?;
    }
    let prefix = lease.prefix.unwrap_or(32);
    nl.add_address(index, lease.address, prefix)
        .with_context(|| format!("address {}/{prefix}", lease.address))?;
    for route in ordered(lease.routes()) {
        let gateway = (!route.gateway.is_unspecified()).then_some(route.gateway);
        match nl.add_route(index, route.dst, route.prefix, gateway) {
            Ok(()) => {}
            // The kernel's own subnet route, or a server listing a route twice: already there.
            Err(e) if e.raw_os_error() == Some(nix::errno::Errno::EEXIST as i32) => {
                tracing::info!(dst = %route.dst, prefix = route.prefix, "route already present")
            }
            Err(e) => {
                return Err(e).with_context(|| {
                    format!("route {}/{} via {}", route.dst, route.prefix, route.gateway)
                })
            }
        }
    }
    Ok(())
}

/// On-link routes (gateway 0.0.0.0) first, each group in the server's order.
fn ordered(routes: Vec<Route>) -> Vec<Route> {
    let (mut on_link, via): (Vec<_>, Vec<_>) =
        routes.into_iter().partition(|r| r.gateway.is_unspecified());
    on_link.extend(via);
    on_link
}

/// The gateway of the default route, if there is one through a gateway.
fn default_gateway(routes: &[Route]) -> Option<Ipv4Addr> {
    routes
        .iter()
        .find(|r| r.prefix == 0 && !r.gateway.is_unspecified())
        .map(|r| r.gateway)
}

/// `/etc/resolv.conf` for the lease's DNS servers (at most three), or nothing without any. Static
/// glibc's built-in `dns` lookup reads it, so relay and Blossom host names resolve; the answers
/// come from the host's network, which TLS to the relays does not have to trust.
fn resolv_conf(dns: &[Ipv4Addr]) -> Option<String> {
    if dns.is_empty() {
        return None;
    }
    let mut text = String::from("# from the DHCP lease (cdvm-agent)\n");
    for server in dns.iter().take(MAX_NAMESERVERS) {
        text.push_str(&format!("nameserver {server}\n"));
    }
    Some(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(dst: [u8; 4], prefix: u8, gateway: [u8; 4]) -> Route {
        Route {
            dst: dst.into(),
            prefix,
            gateway: gateway.into(),
        }
    }

    #[test]
    fn on_link_routes_go_first() {
        let routes = vec![
            route([0, 0, 0, 0], 0, [10, 128, 0, 1]),
            route([10, 128, 0, 1], 32, [0, 0, 0, 0]),
            route([169, 254, 169, 254], 32, [10, 128, 0, 1]),
        ];
        let got = ordered(routes.clone());
        assert_eq!(got, vec![routes[1], routes[0], routes[2]]);
        assert_eq!(default_gateway(&got), Some(Ipv4Addr::new(10, 128, 0, 1)));
        // Negative twin: no default route, or one that is on-link only, gives no gateway.
        assert_eq!(default_gateway(&routes[1..]), None);
        assert_eq!(
            default_gateway(&[route([0, 0, 0, 0], 0, [0, 0, 0, 0])]),
            None
        );
    }

    #[test]
    fn resolv_conf_lists_at_most_three() {
        assert_eq!(resolv_conf(&[]), None);
        let one = resolv_conf(&[Ipv4Addr::new(10, 0, 2, 3)]).expect("text");
        assert!(one.ends_with("nameserver 10.0.2.3\n"));
        let many: Vec<Ipv4Addr> = (1..=5).map(|i| Ipv4Addr::new(10, 0, 0, i)).collect();
        let text = resolv_conf(&many).expect("text");
        assert_eq!(text.matches("nameserver").count(), 3);
        assert!(!text.contains("10.0.0.4"));
    }
}
