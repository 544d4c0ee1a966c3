//! Which network addresses a webhook may reach: only global ones, so that a
//! tenant's `callback_url` cannot make our workers call into our own network
//! (loopback, private ranges, cloud metadata, link-local, site-local…), nor
//! reach it through an address that embeds one (IPv4-mapped, NAT64, 6to4).
//!
//! The ranges are those of the IANA IPv4 and IPv6 special-purpose address
//! registries that are not globally reachable, plus whole blocks where a
//! narrower rule would gain nothing for a webhook (all of `192.0.0.0/24`,
//! `2001::/23`, `240.0.0.0/4`).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Whether `ip` is a public address that a webhook may be sent to.
pub fn is_global(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_global_v4(v4),
        IpAddr::V6(v6) => is_global_v6(v6),
    }
}

/// Whether a webhook may be sent to `ip`: a global address, or, where
/// `allow_private` (`FACEREC_WEBHOOK_ALLOW_PRIVATE`: tests, receivers inside
/// a private network), loopback and the private ranges (`10/8`,
/// `172.16/12`, `192.168/16`, unique-local `fc00::/7`), written plainly.
/// Link-local (cloud metadata at `169.254.169.254`), reserved ranges and
/// addresses that embed another (`::127.0.0.1`, NAT64) stay refused even then.
pub fn may_deliver_to(ip: IpAddr, allow_private: bool) -> bool {
    is_global(ip) || (allow_private && is_plainly_private(ip.to_canonical()))
}

fn is_plainly_private(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_loopback() || v4.is_private(),
        IpAddr::V6(v6) => v6.is_loopback() || (v6.segments()[0] & 0xfe00) == 0xfc00,
    }
}

fn is_global_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    let refused = a == 0 // "this network"
        || a == 10 // private
        || (a == 100 && (64..128).contains(&b)) // shared address space (CGN)
        || a == 127 // loopback
        || (a == 169 && b == 254) // link-local, cloud metadata
        || (a == 172 && (16..32).contains(&b)) // private
        || (a == 192 && b == 0 && c == 0) // IETF protocol assignments
        || (a == 192 && b == 0 && c == 2) // documentation (TEST-NET-1)
        || (a == 192 && b == 88 && c == 99) // 6to4 relay anycast (deprecated)
        || (a == 192 && b == 168) // private
        || (a == 198 && (b == 18 || b == 19)) // benchmarking
        || (a == 198 && b == 51 && c == 100) // documentation (TEST-NET-2)
        || (a == 203 && b == 0 && c == 113) // documentation (TEST-NET-3)
        || a >= 224; // multicast, reserved (240/4) and broadcast
    !refused
}

fn is_global_v6(ip: Ipv6Addr) -> bool {
    let s = ip.segments();
    // An address that carries an IPv4 one reaches whatever that one reaches.
    if let Some(v4) = ip.to_ipv4_mapped() {
        return is_global_v4(v4);
    }
    if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        // NAT64 well-known prefix (64:ff9b::/96): the IPv4 address is the last 32 bits.
        return is_global_v4(embedded_v4(s[6], s[7]));
    }
    if s[0] == 0x2002 {
        // 6to4 (2002::/16): the IPv4 address follows the prefix.
        return is_global_v4(embedded_v4(s[1], s[2]));
    }
    // Only global unicast (2000::/3) is public. This leaves out ::/128, ::1,
    // IPv4-compatible ::/96 (`::127.0.0.1`), 64:ff9b:1::/48 (local-use NAT64),
    // 100::/64 (discard), fc00::/7 (unique local), fe80::/10 (link-local),
    // fec0::/10 (site-local), ff00::/8 (multicast) and everything unassigned.
    if (s[0] & 0xe000) != 0x2000 {
        return false;
    }
    // 2001::/23: IETF protocol assignments (Teredo, benchmarking, ORCHID…);
    // 2001:db8::/32 and 3fff::/20: documentation.
    let refused = (s[0] == 0x2001 && (s[1] < 0x200 || s[1] == 0xdb8)) || (s[0] == 0x3fff && s[1] < 0x1000);
    !refused
}

fn embedded_v4(high: u16, low: u16) -> Ipv4Addr {
    Ipv4Addr::from((u32::from(high) << 16) | u32::from(low))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn the_addresses_of_the_report_are_refused() {
        // Issue 29, item 10: each of these was accepted as a webhook target.
        for refused in ["::127.0.0.1", "64:ff9b::7f00:1", "fec0::1", "240.0.0.1", "198.18.0.1"] {
            assert!(!is_global(ip(refused)), "{refused}");
        }
    }

    #[test]
    fn every_special_purpose_ipv4_range_is_refused() {
        for refused in [
            "0.0.0.0",
            "0.1.2.3",
            "10.0.0.1",
            "10.255.255.255",
            "100.64.0.1",
            "100.127.255.254",
            "127.0.0.1",
            "127.1.2.3",
            "169.254.169.254",
            "172.16.0.1",
            "172.31.255.255",
            "192.0.0.1",
            "192.0.0.170",
            "192.0.2.1",
            "192.88.99.1",
            "192.168.1.1",
            "198.18.0.1",
            "198.19.255.255",
            "198.51.100.7",
            "203.0.113.9",
            "224.0.0.1",
            "239.255.255.250",
            "240.0.0.1",
            "250.1.2.3",
            "255.255.255.255",
        ] {
            assert!(!is_global(ip(refused)), "{refused}");
        }
    }

    #[test]
    fn public_ipv4_addresses_and_the_edges_of_ranges_are_accepted() {
        for public in [
            "1.1.1.1",
            "8.8.8.8",
            "93.184.216.34",
            "9.255.255.255",
            "11.0.0.0",
            "100.63.255.255",
            "100.128.0.0",
            "126.255.255.255",
            "128.0.0.0",
            "169.253.255.255",
            "169.255.0.0",
            "172.15.255.255",
            "172.32.0.0",
            "192.0.1.1",
            "192.0.3.1",
            "192.88.98.1",
            "192.167.255.255",
            "192.169.0.0",
            "198.17.255.255",
            "198.20.0.0",
            "198.51.99.1",
            "203.0.112.1",
            "223.255.255.255",
        ] {
            assert!(is_global(ip(public)), "{public}");
        }
    }

    #[test]
    fn every_special_purpose_ipv6_range_is_refused() {
        for refused in [
            "::",
            "::1",
            // IPv4-compatible (deprecated), whatever it embeds.
            "::127.0.0.1",
            "::8.8.8.8",
            // IPv4-mapped: the embedded address decides.
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "::ffff:169.254.169.254",
            // NAT64, well-known prefix: the embedded address decides.
            "64:ff9b::7f00:1",
            "64:ff9b::a9fe:a9fe",
            "64:ff9b::10.1.2.3",
            // NAT64, local-use prefix: not global whatever it embeds.
            "64:ff9b:1::808:808",
            // 6to4: the embedded address decides.
            "2002:7f00:1::1",
            "2002:c0a8:101::",
            "2002:a00:1::1",
            // Teredo (the client's address is xor'ed in the last 32 bits; refused whatever it is).
            "2001:0:4136:e378:8000:63bf:3fff:fdd2",
            "2001:0:4136:e378:8000:63bf:80ff:fffe",
            "2001:2::1",
            "2001:10::1",
            "2001:20::1",
            "2001:db8::1",
            "2001:db8:ffff::1",
            "3fff::1",
            "3fff:fff::1",
            "fc00::1",
            "fd00:ec2::254",
            "fe80::1",
            "febf::1",
            "fec0::1",
            "feff::1",
            "ff02::1",
            "ff0e::1",
            "100::1",
            "100::ffff:ffff:ffff:ffff",
            "4000::1",
        ] {
            assert!(!is_global(ip(refused)), "{refused}");
        }
    }

    #[test]
    fn public_ipv6_addresses_are_accepted() {
        for public in [
            "2606:4700::1111",
            "2a00:1450:4001:830::200e",
            "2001:4860:4860::8888",
            "2001:200::1",
            "2001:db7:ffff::1",
            "2001:db9::1",
            "::ffff:8.8.8.8",
            "64:ff9b::808:808",
            "2002:808:808::1",
            "3ffe::1",
            "3fff:1000::1",
        ] {
            assert!(is_global(ip(public)), "{public}");
        }
    }

    #[test]
    fn allowing_private_lets_only_loopback_and_private_ranges_through() {
        for private in
            ["127.0.0.1", "127.9.9.9", "::1", "::ffff:127.0.0.1", "10.0.0.1", "172.16.5.4", "192.168.1.1", "fd12::1"]
        {
            assert!(may_deliver_to(ip(private), true), "{private}");
            assert!(!may_deliver_to(ip(private), false), "{private}");
        }
        for other in [
            "169.254.169.254",
            "100.64.0.1",
            "240.0.0.1",
            "198.18.0.1",
            "0.0.0.0",
            "::127.0.0.1",
            "64:ff9b::7f00:1",
            "2002:7f00:1::",
            "fec0::1",
            "fe80::1",
            "ff02::1",
        ] {
            assert!(!may_deliver_to(ip(other), true), "{other}");
        }
        assert!(may_deliver_to(ip("8.8.8.8"), false));
    }
}
