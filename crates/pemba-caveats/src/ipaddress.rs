//! SpiceDB's `ipaddress` caveat type and its `in_cidr` method.

use std::net::IpAddr;
use std::sync::Arc;

use cel::extractors::This;
use cel::objects::Opaque;
use cel::{ExecutionError, FunctionContext};

/// An IP address; IPv4-mapped IPv6 addresses are unmapped, as Go's `netip.Addr.Unmap` does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpAddress(pub IpAddr);

impl IpAddress {
    pub fn parse(text: &str) -> Option<IpAddress> {
        let ip: IpAddr = text.parse().ok()?;
        Some(IpAddress(ip.to_canonical()))
    }

    /// True if the address lies in `cidr` (`10.0.0.0/8`, `2001:db8::/32`); `None` if `cidr` is
    /// not a valid prefix.
    pub fn in_cidr(&self, cidr: &str) -> Option<bool> {
        let (network, bits) = cidr.split_once('/')?;
        let network: IpAddr = network.parse().ok()?;
        if bits.is_empty() || bits.starts_with('+') || (bits.len() > 1 && bits.starts_with('0')) {
            return None;
        }
        let bits: u32 = bits.parse().ok()?;
        Some(match (self.0, network) {
            (IpAddr::V4(ip), IpAddr::V4(net)) if bits <= 32 => {
                let mask = u32::MAX.checked_shl(32 - bits).unwrap_or(0);
                u32::from(ip) & mask == u32::from(net) & mask
            }
            (IpAddr::V6(ip), IpAddr::V6(net)) if bits <= 128 => {
                let mask = u128::MAX.checked_shl(128 - bits).unwrap_or(0);
                u128::from(ip) & mask == u128::from(net) & mask
            }
            (IpAddr::V4(_), IpAddr::V4(_)) | (IpAddr::V6(_), IpAddr::V6(_)) => return None,
            // An address never lies in a prefix of the other family.
            _ => false,
        })
    }
}

impl Opaque for IpAddress {
    fn runtime_type_name(&self) -> &str {
        "IPAddress"
    }
}

/// The CEL binding of `ip.in_cidr(cidr)`.
pub(crate) fn in_cidr(
    ftx: &FunctionContext,
    This(this): This<Arc<dyn Opaque>>,
    cidr: Arc<String>,
) -> Result<bool, ExecutionError> {
    let ip = this
        .downcast_ref::<IpAddress>()
        .ok_or_else(|| ftx.error("in_cidr applies to an ipaddress"))?;
    ip.in_cidr(&cidr)
        .ok_or_else(|| ftx.error(format!("invalid CIDR string: `{cidr}`")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidr_membership() {
        let ip = IpAddress::parse("10.1.2.3").unwrap();
        assert_eq!(ip.in_cidr("10.0.0.0/8"), Some(true));
        assert_eq!(ip.in_cidr("10.1.2.3/32"), Some(true));
        assert_eq!(ip.in_cidr("11.0.0.0/8"), Some(false));
        assert_eq!(ip.in_cidr("0.0.0.0/0"), Some(true));
        assert_eq!(ip.in_cidr("2001:db8::/32"), Some(false));
        assert_eq!(ip.in_cidr("10.0.0.0/33"), None);
        assert_eq!(ip.in_cidr("10.0.0.0"), None);
        let mapped = IpAddress::parse("::ffff:10.1.2.3").unwrap();
        assert_eq!(mapped, ip);
        let v6 = IpAddress::parse("2001:db8::1").unwrap();
        assert_eq!(v6.in_cidr("2001:db8::/32"), Some(true));
    }
}
