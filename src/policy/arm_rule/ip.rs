//! `ipRangeContains(range, target)`: whether a CIDR range holds an address or a narrower range.

use std::net::IpAddr;

fn parse_range(s: &str) -> Option<(u128, u32, bool)> {
    let (addr, bits) = match s.split_once('/') {
        Some((a, b)) => (a, Some(b.trim().parse::<u32>().ok()?)),
        None => (s, None),
    };
    let ip: IpAddr = addr.trim().parse().ok()?;
    let (value, width, v4) = match ip {
        IpAddr::V4(v) => (u128::from(u32::from(v)), 32, true),
        IpAddr::V6(v) => (u128::from(v), 128, false),
    };
    let bits = bits.unwrap_or(width);
    (bits <= width).then_some((value, width - bits, v4))
}

/// `None` when either side is not an address or CIDR range, or their families differ.
pub fn range_contains(range: &str, target: &str) -> Option<bool> {
    let (r, r_host_bits, r4) = parse_range(range)?;
    let (t, t_host_bits, t4) = parse_range(target)?;
    if r4 != t4 {
        return None;
    }
    if t_host_bits > r_host_bits {
        return Some(false);
    }
    let mask = if r_host_bits >= 128 {
        0
    } else {
        u128::MAX << r_host_bits
    };
    Some(r & mask == t & mask)
}
