//! `code_enum!`: protocol code enums whose unknown values round-trip.

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
