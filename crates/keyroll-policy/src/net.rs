//! IPv4 / IPv6 CIDR blocks for `IpAddress` / `NotIpAddress`, over `std::net`.

use std::net::IpAddr;

/// A CIDR block (`203.0.113.0/24`, `2001:db8::/32`; a bare address is a /32 or /128).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Cidr {
    v6: bool,
    network: u128,
    prefix: u8,
}

impl Cidr {
    /// Parses a block; the error says what is wrong with it.
    pub fn parse(text: &str) -> Result<Cidr, &'static str> {
        let (addr, prefix) = match text.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (text, None),
        };
        let ip: IpAddr = addr
            .trim()
            .parse()
            .map_err(|_| "is not an IPv4 or IPv6 address or CIDR block")?;
        let (v6, bits, max) = match ip {
            IpAddr::V4(v4) => (false, u128::from(u32::from(v4)), 32u8),
            IpAddr::V6(v6) => (true, u128::from(v6), 128u8),
        };
        let prefix = match prefix {
            None => max,
            Some(p) => {
                let p = p.trim();
                if p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) || p.len() > 3 {
                    return Err("has a prefix length that is not a number");
                }
                let n: u8 = p
                    .parse()
                    .map_err(|_| "has a prefix length that is too long")?;
                if n > max {
                    return Err("has a prefix length longer than the address");
                }
                n
            }
        };
        Ok(Cidr {
            v6,
            network: bits & mask(prefix, max),
            prefix,
        })
    }

    /// Whether `ip` is inside the block (an IPv4 address is never in an IPv6 block).
    pub fn contains(&self, ip: IpAddr) -> bool {
        let (v6, bits, max) = match ip {
            IpAddr::V4(v4) => (false, u128::from(u32::from(v4)), 32u8),
            IpAddr::V6(v6) => (true, u128::from(v6), 128u8),
        };
        v6 == self.v6 && bits & mask(self.prefix, max) == self.network
    }
}

fn mask(prefix: u8, max: u8) -> u128 {
    if prefix == 0 {
        return 0;
    }
    let all = if max == 32 {
        u128::from(u32::MAX)
    } else {
        u128::MAX
    };
    all & (all << (max - prefix))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn ipv4_blocks() {
        let c = Cidr::parse("203.0.113.0/24").unwrap();
        assert!(c.contains(ip("203.0.113.255")));
        assert!(!c.contains(ip("203.0.114.0")));
        assert!(Cidr::parse("0.0.0.0/0").unwrap().contains(ip("8.8.8.8")));
        assert!(Cidr::parse("10.1.2.3").unwrap().contains(ip("10.1.2.3")));
        assert!(!Cidr::parse("10.1.2.3").unwrap().contains(ip("10.1.2.4")));
        assert!(
            Cidr::parse("10.1.2.3/8")
                .unwrap()
                .contains(ip("10.200.0.1"))
        );
    }

    #[test]
    fn ipv6_blocks_and_families_do_not_mix() {
        let c = Cidr::parse("2001:db8::/32").unwrap();
        assert!(c.contains(ip("2001:db8:ffff::1")));
        assert!(!c.contains(ip("2001:db9::1")));
        assert!(!c.contains(ip("32.1.13.184")));
        assert!(!Cidr::parse("0.0.0.0/0").unwrap().contains(ip("::1")));
        assert!(Cidr::parse("::/0").unwrap().contains(ip("::1")));
        assert!(Cidr::parse("::1/128").unwrap().contains(ip("::1")));
    }

    #[test]
    fn malformed_blocks_are_refused() {
        for bad in [
            "",
            "10.0.0.0/33",
            "::/129",
            "10.0.0/8",
            "10.0.0.0/",
            "10.0.0.0/x",
            "10.0.0.0/-1",
            "host",
        ] {
            assert!(Cidr::parse(bad).is_err(), "{bad}");
        }
    }
}
