//! Values of the IEs with odd encodings (PROTOCOL.md 9 and 9.1).

use core::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};

use super::error::{Result, WireError};
use super::ie::IeType;

/// Linux `AF_INET`.
const AF_INET: u16 = 2;
/// Linux `AF_INET6`.
const AF_INET6: u16 = 10;
/// Length of a raw `sockaddr_in`.
const SOCKADDR_IN_LEN: usize = 16;
/// Length of a raw `sockaddr_in6`.
const SOCKADDR_IN6_LEN: usize = 28;

/// Byte order of the family field of an APPARENT ADDR.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FamilyOrder {
    /// Host order of x86 Linux (`02 00`): what Asterisk sends.
    Little,
    /// Network order (`00 02`).
    Big,
}

/// APPARENT ADDR: the address a registrar saw a registration come from
/// (IE 18). Asterisk sends a raw `sockaddr_in`/`sockaddr_in6` with the family
/// in host byte order (PROTOCOL.md 9.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ApparentAddr {
    /// The address.
    pub addr: SocketAddr,
    /// The family byte order it was (or is to be) encoded with.
    pub family_order: FamilyOrder,
}

impl ApparentAddr {
    /// An address to be emitted the way Asterisk does.
    pub fn new(addr: SocketAddr) -> Self {
        Self {
            addr,
            family_order: FamilyOrder::Little,
        }
    }

    /// Parses a 16-byte `sockaddr_in` or 28-byte `sockaddr_in6`, accepting
    /// either family byte order.
    pub fn parse(data: &[u8]) -> Result<Self> {
        let bad_len = || WireError::IeBadLength {
            ie: IeType::ApparentAddr,
            expected: "16 (IPv4) or 28 (IPv6)",
            got: data.len(),
        };
        let fam: [u8; 2] = data
            .get(..2)
            .and_then(|f| f.try_into().ok())
            .ok_or_else(bad_len)?;
        let (family, family_order) = match (u16::from_le_bytes(fam), u16::from_be_bytes(fam)) {
            (f @ (AF_INET | AF_INET6), _) => (f, FamilyOrder::Little),
            (_, f @ (AF_INET | AF_INET6)) => (f, FamilyOrder::Big),
            _ => {
                return Err(WireError::IeBadValue {
                    ie: IeType::ApparentAddr,
                    why: "address family is neither AF_INET nor AF_INET6",
                })
            }
        };
        let addr = match (family, data.len()) {
            (AF_INET, SOCKADDR_IN_LEN) => {
                let port = u16::from_be_bytes([data[2], data[3]]);
                let ip = Ipv4Addr::new(data[4], data[5], data[6], data[7]);
                SocketAddr::V4(SocketAddrV4::new(ip, port))
            }
            (AF_INET6, SOCKADDR_IN6_LEN) => {
                let port = u16::from_be_bytes([data[2], data[3]]);
                let flowinfo = u32::from_be_bytes([data[4], data[5], data[6], data[7]]);
                let mut octets = [0u8; 16];
                octets.copy_from_slice(&data[8..24]);
                let scope = [data[24], data[25], data[26], data[27]];
                let scope_id = match family_order {
                    FamilyOrder::Little => u32::from_le_bytes(scope),
                    FamilyOrder::Big => u32::from_be_bytes(scope),
                };
                SocketAddr::V6(SocketAddrV6::new(
                    Ipv6Addr::from(octets),
                    port,
                    flowinfo,
                    scope_id,
                ))
            }
            _ => return Err(bad_len()),
        };
        Ok(Self { addr, family_order })
    }

    /// Bytes this address takes (16 or 28).
    pub fn buffer_len(&self) -> usize {
        match self.addr {
            SocketAddr::V4(_) => SOCKADDR_IN_LEN,
            SocketAddr::V6(_) => SOCKADDR_IN6_LEN,
        }
    }

    /// The raw sockaddr bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = vec![0u8; self.buffer_len()];
        let family = match self.addr {
            SocketAddr::V4(_) => AF_INET,
            SocketAddr::V6(_) => AF_INET6,
        };
        let fam = match self.family_order {
            FamilyOrder::Little => family.to_le_bytes(),
            FamilyOrder::Big => family.to_be_bytes(),
        };
        out[..2].copy_from_slice(&fam);
        out[2..4].copy_from_slice(&self.addr.port().to_be_bytes());
        match self.addr {
            SocketAddr::V4(a) => out[4..8].copy_from_slice(&a.ip().octets()),
            SocketAddr::V6(a) => {
                out[4..8].copy_from_slice(&a.flowinfo().to_be_bytes());
                out[8..24].copy_from_slice(&a.ip().octets());
                let scope = match self.family_order {
                    FamilyOrder::Little => a.scope_id().to_le_bytes(),
                    FamilyOrder::Big => a.scope_id().to_be_bytes(),
                };
                out[24..28].copy_from_slice(&scope);
            }
        }
        out
    }
}

/// A `u16` bitmask newtype with named bits; unknown bits are kept.
macro_rules! bitmask16 {
    ($(#[$attr:meta])* $name:ident { $($(#[$cattr:meta])* $konst:ident = $value:expr;)+ }) => {
        $(#[$attr])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
        pub struct $name(u16);

        impl $name {
            $($(#[$cattr])* pub const $konst: Self = Self($value);)+

            /// From the raw bitmask (unknown bits kept).
            pub const fn from_bits(bits: u16) -> Self {
                Self(bits)
            }

            /// The raw bitmask.
            pub const fn bits(self) -> u16 {
                self.0
            }

            /// True when every bit of `other` is set.
            pub const fn contains(self, other: Self) -> bool {
                self.0 & other.0 == other.0
            }
        }

        impl core::ops::BitOr for $name {
            type Output = Self;
            fn bitor(self, rhs: Self) -> Self {
                Self(self.0 | rhs.0)
            }
        }
    };
}

bitmask16! {
    /// AUTHMETHODS bitmask (IE 14).
    AuthMethods {
        /// Plaintext password.
        PLAINTEXT = 0x1;
        /// MD5 challenge/response.
        MD5 = 0x2;
        /// RSA signature.
        RSA = 0x4;
    }
}

bitmask16! {
    /// ENCRYPTION bitmask (IE 43).
    Encryption {
        /// AES-128 (CBC, zero IV).
        AES128 = 0x0001;
        /// Key rotation (Asterisk).
        KEY_ROTATION = 0x8000;
    }
}

/// DATETIME (IE 31): a packed local date and time with 2-second resolution.
///
/// Bits 31-25 year - 2000, 24-21 month, 20-16 day, 15-11 hour, 10-5 minute,
/// 4-0 seconds / 2 (RFC 5456 section 8.6.28). Fields are kept as decoded;
/// nothing checks that the date exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct IaxDateTime {
    /// Year (2000..=2127).
    pub year: u16,
    /// Month (1..=12 when valid).
    pub month: u8,
    /// Day of month (1..=31 when valid).
    pub day: u8,
    /// Hour (0..=23 when valid).
    pub hour: u8,
    /// Minute (0..=59 when valid).
    pub minute: u8,
    /// Second (even, 0..=58 when valid).
    pub second: u8,
}

impl IaxDateTime {
    /// Decodes the packed form.
    pub fn from_bits(bits: u32) -> Self {
        // Each field is masked to its width before narrowing.
        Self {
            year: 2000 + (bits >> 25) as u16,
            month: ((bits >> 21) & 0x0f) as u8,
            day: ((bits >> 16) & 0x1f) as u8,
            hour: ((bits >> 11) & 0x1f) as u8,
            minute: ((bits >> 5) & 0x3f) as u8,
            second: ((bits & 0x1f) * 2) as u8,
        }
    }

    /// Encodes the packed form (fields are masked to their widths; odd
    /// seconds round down).
    pub fn to_bits(self) -> u32 {
        (u32::from(self.year.saturating_sub(2000)) & 0x7f) << 25
            | (u32::from(self.month) & 0x0f) << 21
            | (u32::from(self.day) & 0x1f) << 16
            | (u32::from(self.hour) & 0x1f) << 11
            | (u32::from(self.minute) & 0x3f) << 5
            | (u32::from(self.second) / 2) & 0x1f
    }
}

/// The RR_* receiver report a PONG carries (IEs 46-51).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct ReceiverReport {
    /// RR_JITTER: interarrival jitter.
    pub jitter: Option<u32>,
    /// RR_LOSS: loss percent << 24 | lost frames (24 bits).
    pub loss: Option<u32>,
    /// RR_PKTS: frames received.
    pub packets: Option<u32>,
    /// RR_DELAY: maximum playout delay (ms).
    pub delay_ms: Option<u16>,
    /// RR_DROPPED: frames dropped.
    pub dropped: Option<u32>,
    /// RR_OOO: frames received out of order.
    pub out_of_order: Option<u32>,
}

impl ReceiverReport {
    /// Loss percentage from RR_LOSS.
    pub fn loss_percent(&self) -> Option<u8> {
        // The top byte of RR_LOSS.
        self.loss.map(|l| (l >> 24) as u8)
    }

    /// Lost frame count from RR_LOSS.
    pub fn lost_frames(&self) -> Option<u32> {
        self.loss.map(|l| l & 0x00ff_ffff)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn apparent_addr_asterisk_bytes() {
        // asterisk22-register-poke.pcap REGACK: 127.0.0.1:4571, family LE.
        let raw = [
            0x02, 0x00, 0x11, 0xdb, 0x7f, 0x00, 0x00, 0x01, 0, 0, 0, 0, 0, 0, 0, 0,
        ];
        let a = ApparentAddr::parse(&raw).expect("valid sockaddr_in");
        assert_eq!(a.addr, "127.0.0.1:4571".parse().expect("literal"));
        assert_eq!(a.family_order, FamilyOrder::Little);
        assert_eq!(a.to_bytes(), raw);
        assert_eq!(ApparentAddr::new(a.addr).to_bytes(), raw);
    }

    #[test]
    fn apparent_addr_big_endian_family_and_v6() {
        let raw = [
            0x00, 0x02, 0x11, 0xd9, 192, 0, 2, 10, 0, 0, 0, 0, 0, 0, 0, 0,
        ];
        let a = ApparentAddr::parse(&raw).expect("valid");
        assert_eq!(a.family_order, FamilyOrder::Big);
        assert_eq!(a.addr, "192.0.2.10:4569".parse().expect("literal"));
        assert_eq!(a.to_bytes(), raw);

        let v6: SocketAddr = "[2001:db8::1]:4569".parse().expect("literal");
        let bytes = ApparentAddr::new(v6).to_bytes();
        assert_eq!(bytes.len(), 28);
        assert_eq!(&bytes[..4], &[0x0a, 0x00, 0x11, 0xd9]);
        assert_eq!(ApparentAddr::parse(&bytes).map(|a| a.addr), Ok(v6));
    }

    #[test]
    fn apparent_addr_rejects_garbage() {
        assert!(ApparentAddr::parse(&[]).is_err());
        assert!(ApparentAddr::parse(&[0x02, 0x00, 1, 2]).is_err());
        assert!(
            ApparentAddr::parse(&[0x07, 0x00, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]).is_err()
        );
    }

    #[test]
    fn datetime_from_capture() {
        // README: 897289909 = 2026-11-27 17:53:42.
        let dt = IaxDateTime::from_bits(897_289_909);
        assert_eq!(
            dt,
            IaxDateTime {
                year: 2026,
                month: 11,
                day: 27,
                hour: 17,
                minute: 53,
                second: 42
            }
        );
        assert_eq!(dt.to_bits(), 897_289_909);
    }

    #[test]
    fn rr_loss_split() {
        let rr = ReceiverReport {
            loss: Some(0x0500_0010),
            ..ReceiverReport::default()
        };
        assert_eq!(rr.loss_percent(), Some(5));
        assert_eq!(rr.lost_frames(), Some(16));
    }
}
