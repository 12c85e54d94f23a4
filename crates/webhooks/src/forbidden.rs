//! Which addresses and host names lie inside the network, where a callback must never go:
//! every IP range that is not public unicast ([`is_forbidden`]), and the host names that can
//! only name an inside host ([`is_internal_name`]). The list lives apart from the URL policy
//! ([`crate::destination`]) because two places judge by it: a URL's text when it is submitted,
//! and every address a name resolves to when a callback is delivered (`resolver`).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Whether a host name can only name a host inside the network, refused by name already, before
/// any resolving: `localhost` and its subdomains (answered with loopback without asking DNS,
/// RFC 6761); a name without a dot (`metadata`, `instance-data`, `redis`: completed by the
/// resolver's search domains, never a public host); names under `.internal` (ICANN's private
/// use, GCP's `metadata.google.internal`, AWS's `*.ec2.internal`), `.local` (multicast DNS) and
/// `.home.arpa`; and `metadata.goog`, Google's other name for its metadata service.
pub fn is_internal_name(host: &str) -> bool {
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    let under = |zone: &str| host == zone || host.ends_with(&format!(".{zone}"));
    !host.contains('.')
        || [
            "localhost",
            "internal",
            "local",
            "home.arpa",
            "metadata.goog",
        ]
        .into_iter()
        .any(under)
}

/// Whether a callback must not connect to `ip`: any address that is not public unicast.
///
/// IPv4: `0.0.0.0/8` (unspecified included), `10/8`, `100.64/10` (carrier-grade NAT),
/// `127/8`, `169.254/16` (link-local, where clouds serve instance metadata), `172.16/12`,
/// `192.0.0/24`, the documentation nets `192.0.2/24`, `198.51.100/24`, `203.0.113/24`,
/// `192.168/16`, `198.18/15` (benchmarking), `224/4` (multicast), `240/4` (reserved, the
/// broadcast address included).
///
/// IPv6: `::` and `::1`, `::ffff:0:0/96` (IPv4-mapped) and `::/96` (IPv4-compatible) judged as
/// their IPv4 address, `64:ff9b::/96` (NAT64) judged by the IPv4 address it embeds and
/// `64:ff9b:1::/48` (local NAT64) refused, `100::/64` (discard), `2001::/32` (Teredo, which
/// tunnels to an address it hides), `2001:db8::/32` (documentation), `2002::/16` (6to4)
/// judged by its embedded IPv4 address, `fc00::/7` (unique local, AWS's `fd00:ec2::254`
/// metadata address included), `fe80::/10` (link-local), `fec0::/10` (old site-local),
/// `ff00::/8` (multicast).
pub fn is_forbidden(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_forbidden_v4(v4),
        IpAddr::V6(v6) => is_forbidden_v6(v6),
    }
}

fn is_forbidden_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    a == 0
        || a == 10
        || a == 127
        || (a == 100 && (64..128).contains(&b))
        || (a == 169 && b == 254)
        || (a == 172 && (16..32).contains(&b))
        || (a == 192 && b == 0 && c == 0)
        || (a == 192 && b == 0 && c == 2)
        || (a == 192 && b == 168)
        || (a == 198 && (b == 18 || b == 19))
        || (a == 198 && b == 51 && c == 100)
        || (a == 203 && b == 0 && c == 113)
        || a >= 224
}

fn is_forbidden_v6(ip: Ipv6Addr) -> bool {
    let s = ip.segments();
    let embedded = || Ipv4Addr::from_bits(ip.to_bits() as u32);
    if ip.is_unspecified() || ip.is_loopback() {
        return true;
    }
    // ::ffff:a.b.c.d (mapped) and ::a.b.c.d (compatible).
    if s[..5] == [0; 5] && (s[5] == 0xffff || s[5] == 0) {
        return is_forbidden_v4(embedded());
    }
    match s[0] {
        0x0064 if s[1] == 0xff9b && s[2..6] == [0; 4] => is_forbidden_v4(embedded()),
        0x0064 if s[1] == 0xff9b && s[2] == 1 => true,
        0x0100 if s[1..4] == [0; 3] => true,
        0x2001 if s[1] == 0 || s[1] == 0x0db8 => true,
        0x2002 => is_forbidden_v4(Ipv4Addr::from_bits(
            (u32::from(s[1]) << 16) | u32::from(s[2]),
        )),
        first => {
            (first & 0xfe00) == 0xfc00 // fc00::/7
                || (first & 0xffc0) == 0xfe80 // fe80::/10
                || (first & 0xffc0) == 0xfec0 // fec0::/10
                || (first & 0xff00) == 0xff00 // ff00::/8
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn forbidden(ip: &str) -> bool {
        is_forbidden(ip.parse().unwrap())
    }

    #[test]
    fn non_public_ipv4_ranges_are_forbidden() {
        let ranges = [
            ("loopback", "127.0.0.1"),
            ("loopback, far end", "127.255.255.254"),
            ("unspecified", "0.0.0.0"),
            ("this network", "0.1.2.3"),
            ("private 10/8", "10.1.2.3"),
            ("private 172.16/12", "172.16.0.1"),
            ("private 172.16/12, far end", "172.31.255.255"),
            ("private 192.168/16", "192.168.1.1"),
            ("CGNAT 100.64/10", "100.64.0.1"),
            ("CGNAT 100.64/10, far end", "100.127.255.255"),
            ("link-local", "169.254.1.1"),
            ("cloud metadata", "169.254.169.254"),
            ("IETF protocol assignments", "192.0.0.8"),
            ("documentation 192.0.2/24", "192.0.2.1"),
            ("documentation 198.51.100/24", "198.51.100.7"),
            ("documentation 203.0.113/24", "203.0.113.9"),
            ("benchmarking 198.18/15", "198.18.0.1"),
            ("benchmarking 198.18/15, far end", "198.19.255.255"),
            ("multicast", "224.0.0.1"),
            ("multicast, far end", "239.255.255.250"),
            ("reserved 240/4", "240.0.0.1"),
            ("broadcast", "255.255.255.255"),
        ];
        for (what, ip) in ranges {
            assert!(forbidden(ip), "{what}: {ip}");
        }
    }

    #[test]
    fn public_ipv4_addresses_are_allowed_including_the_neighbours_of_forbidden_ranges() {
        for ip in [
            "8.8.8.8",
            "1.1.1.1",
            "93.184.216.34",
            "100.63.255.255",
            "100.128.0.0",
            "172.15.255.255",
            "172.32.0.0",
            "169.253.255.255",
            "192.0.1.1",
            "192.169.0.1",
            "198.17.255.255",
            "198.20.0.0",
            "223.255.255.255",
            "11.0.0.1",
            "126.255.255.255",
            "128.0.0.1",
        ] {
            assert!(!forbidden(ip), "{ip}");
        }
    }

    #[test]
    fn non_public_ipv6_ranges_are_forbidden() {
        let ranges = [
            ("loopback", "::1"),
            ("unspecified", "::"),
            ("unique local", "fc00::1"),
            ("unique local fd", "fd12:3456::1"),
            ("AWS metadata", "fd00:ec2::254"),
            ("link-local", "fe80::1"),
            ("link-local, far end", "febf::1"),
            ("site-local", "fec0::1"),
            ("multicast", "ff02::1"),
            ("mapped loopback", "::ffff:127.0.0.1"),
            ("mapped metadata", "::ffff:169.254.169.254"),
            ("mapped private", "::ffff:10.0.0.1"),
            ("compatible loopback", "::127.0.0.1"),
            ("compatible private", "::192.168.0.1"),
            ("NAT64 of loopback", "64:ff9b::127.0.0.1"),
            ("NAT64 of metadata", "64:ff9b::a9fe:a9fe"),
            ("local NAT64", "64:ff9b:1::8.8.8.8"),
            ("discard", "100::1"),
            ("Teredo", "2001:0:4136:e378::1"),
            ("documentation", "2001:db8::1"),
            ("6to4 of private", "2002:c0a8:0101::1"),
            ("6to4 of loopback", "2002:7f00:1::1"),
        ];
        for (what, ip) in ranges {
            assert!(forbidden(ip), "{what}: {ip}");
        }
    }

    #[test]
    fn public_ipv6_addresses_are_allowed_and_embedded_public_ipv4_too() {
        for ip in [
            "2606:4700:4700::1111",
            "2001:4860:4860::8888",
            "2a00:1450:4001::1",
            "::ffff:8.8.8.8",
            "64:ff9b::8.8.8.8",
            "2002:0808:0808::1",
            "fbff::1",
            "fe7f::1",
        ] {
            assert!(!forbidden(ip), "{ip}");
        }
    }
}
