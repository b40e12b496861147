//! Shared building blocks: `code_enum!` (protocol code enums whose unknown
//! values round-trip), `view_basics!` (what every frame view has) and
//! `emit_target` (the output slice of an `emit`).

use super::error::{Result, WireError};

/// Defines an enum of protocol codes with an `Unknown(n)` variant, lossless
/// conversions from and to the raw code, and `Display` with the protocol name.
macro_rules! code_enum {
    (
        $(#[$attr:meta])*
        pub enum $name:ident($ty:ty) {
            $(
                $(#[$vattr:meta])*
                $variant:ident = $value:expr => $text:expr
            ),+ $(,)?
        }
    ) => {
        $(#[$attr])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name {
            $(
                $(#[$vattr])*
                $variant,
            )+
            /// A code this codec does not know; kept so it round-trips.
            Unknown($ty),
        }

        impl From<$ty> for $name {
            fn from(value: $ty) -> Self {
                match value {
                    $( $value => Self::$variant, )+
                    other => Self::Unknown(other),
                }
            }
        }

        impl From<$name> for $ty {
            fn from(value: $name) -> Self {
                match value {
                    $( $name::$variant => $value, )+
                    $name::Unknown(other) => other,
                }
            }
        }

        impl $name {
            /// The raw code.
            pub fn code(self) -> $ty {
                self.into()
            }

            /// Every known code, in table order.
            pub const KNOWN: &'static [$name] = &[$( $name::$variant, )+];
        }

        impl core::fmt::Display for $name {
            fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
                match self {
                    $( Self::$variant => f.write_str($text), )+
                    Self::Unknown(code) => write!(f, "unknown({code:#x})"),
                }
            }
        }
    };
}

pub(crate) use code_enum;

/// The parts every frame view shares: the header length, construction
/// without checks, the length check, and access to the buffer. Expands
/// inside `impl<T: AsRef<[u8]>> View<T>`; the view's field must be `buffer`.
macro_rules! view_basics {
    ($structure:expr, $header_len:expr) => {
        /// Length of the header.
        pub const HEADER_LEN: usize = $header_len;

        /// Wraps a buffer without checks; accessors may panic if it is
        /// shorter than the header. Use `new_checked` on received bytes.
        pub fn new_unchecked(buffer: T) -> Self {
            Self { buffer }
        }

        /// Checks that the buffer holds a whole header.
        pub fn check_len(&self) -> Result<()> {
            let len = self.buffer.as_ref().len();
            if len < Self::HEADER_LEN {
                Err(WireError::truncated($structure, 0, Self::HEADER_LEN, len))
            } else {
                Ok(())
            }
        }

        /// The underlying buffer.
        pub fn into_inner(self) -> T {
            self.buffer
        }

        /// The whole frame.
        pub fn as_bytes(&self) -> &[u8] {
            self.buffer.as_ref()
        }
    };
}

pub(crate) use view_basics;

/// The front `needed` bytes of an output buffer, or `BufferTooSmall`.
pub(crate) fn emit_target(buf: &mut [u8], needed: usize) -> Result<&mut [u8]> {
    let got = buf.len();
    buf.get_mut(..needed)
        .ok_or(WireError::BufferTooSmall { needed, got })
}
