//! Information elements (RFC 5456 section 8.6; PROTOCOL.md 9).
//!
//! An IE is one byte of type, one byte of length (0..=255) and the data.
//! [`IeIter`] walks a received IE block without copying; [`IeBlock`] is a
//! block known to end exactly on an IE boundary; [`IeList`] is the owned
//! form that parses and emits. IEs keep their raw bytes, so unknown types,
//! odd lengths and repeated IEs all re-emit unchanged; the typed accessors
//! of [`IeLookup`] decode on demand.

use super::call_number::CallNumber;
use super::error::{Result, Structure, WireError};
use super::format::MediaFormat;
use super::ie_values::{ApparentAddr, AuthMethods, Encryption, IaxDateTime, ReceiverReport};
use super::macros::{code_enum, emit_target};

code_enum! {
    /// Information element type (RFC 5456 section 8.6; PROTOCOL.md 9).
    pub enum IeType(u8) {
        /// Number or extension being called (string).
        CalledNumber = 0x01 => "CALLED NUMBER",
        /// Calling number (string).
        CallingNumber = 0x02 => "CALLING NUMBER",
        /// Calling number ANI for billing (string).
        CallingAni = 0x03 => "CALLING ANI",
        /// Name of caller (string).
        CallingName = 0x04 => "CALLING NAME",
        /// Context for the number (string).
        CalledContext = 0x05 => "CALLED CONTEXT",
        /// Username (peer or user) for authentication (string).
        Username = 0x06 => "USERNAME",
        /// Password for plaintext authentication (string).
        Password = 0x07 => "PASSWORD",
        /// Actual codec capability (u32 bitmask).
        Capability = 0x08 => "CAPABILITY",
        /// Desired codec format (u32 bitmask).
        Format = 0x09 => "FORMAT",
        /// Desired language (string).
        Language = 0x0a => "LANGUAGE",
        /// Protocol version (u16, 2).
        Version = 0x0b => "VERSION",
        /// CPE ADSI capability (u16).
        AdsiCpe = 0x0c => "ADSICPE",
        /// Originally dialed DNID (string).
        Dnid = 0x0d => "DNID",
        /// Authentication methods (u16 bitmask).
        AuthMethods = 0x0e => "AUTHMETHODS",
        /// Challenge data (string; 16 raw bytes in RTKEY).
        Challenge = 0x0f => "CHALLENGE",
        /// MD5 challenge result (32 hex characters).
        Md5Result = 0x10 => "MD5 RESULT",
        /// RSA challenge result (base64).
        RsaResult = 0x11 => "RSA RESULT",
        /// Apparent address of the peer (raw sockaddr).
        ApparentAddr = 0x12 => "APPARENT ADDR",
        /// Refresh interval in seconds (u16).
        Refresh = 0x13 => "REFRESH",
        /// Dialplan status (u16).
        DpStatus = 0x14 => "DPSTATUS",
        /// Call number of the peer (u16; transfers).
        CallNo = 0x15 => "CALLNO",
        /// Cause text (string).
        Cause = 0x16 => "CAUSE",
        /// Unknown IAX subclass (u8; UNSUPPORT).
        IaxUnknown = 0x17 => "IAX UNKNOWN",
        /// Message count (u16).
        MsgCount = 0x18 => "MSGCOUNT",
        /// Request auto-answer (empty).
        AutoAnswer = 0x19 => "AUTOANSWER",
        /// Music on hold class (empty or string).
        MusicOnHold = 0x1a => "MUSICONHOLD",
        /// Transfer request identifier (u32).
        TransferId = 0x1b => "TRANSFERID",
        /// Referring DNIS (string).
        Rdnis = 0x1c => "RDNIS",
        /// Provisioning information (nested IEs; Asterisk).
        Provisioning = 0x1d => "PROVISIONING",
        /// AES provisioning information (Asterisk).
        AesProvisioning = 0x1e => "AESPROVISIONING",
        /// Date and time (u32 packed).
        DateTime = 0x1f => "DATETIME",
        /// Device type (string; Asterisk).
        DeviceType = 0x20 => "DEVICETYPE",
        /// Service identifier (string; Asterisk).
        ServiceIdent = 0x21 => "SERVICEIDENT",
        /// Firmware revision (u16; Asterisk).
        FirmwareVer = 0x22 => "FIRMWAREVER",
        /// Firmware block description (u32; Asterisk).
        FwBlockDesc = 0x23 => "FWBLOCKDESC",
        /// Firmware block of data (raw; Asterisk).
        FwBlockData = 0x24 => "FWBLOCKDATA",
        /// Provisioning version (u32; Asterisk).
        ProvVer = 0x25 => "PROVVER",
        /// Calling presentation (u8).
        CallingPres = 0x26 => "CALLINGPRES",
        /// Calling type of number (u8).
        CallingTon = 0x27 => "CALLINGTON",
        /// Calling transit network select (u16).
        CallingTns = 0x28 => "CALLINGTNS",
        /// Supported sampling rates (u16 bitmask).
        SamplingRate = 0x29 => "SAMPLINGRATE",
        /// Hangup cause code (u8, Q.850).
        CauseCode = 0x2a => "CAUSECODE",
        /// Encryption format (u16).
        Encryption = 0x2b => "ENCRYPTION",
        /// Encryption key (raw).
        EncKey = 0x2c => "ENCKEY",
        /// Codec negotiation preferences (string).
        CodecPrefs = 0x2d => "CODEC_PREFS",
        /// Receiver report: interarrival jitter (u32).
        RrJitter = 0x2e => "RR_JITTER",
        /// Receiver report: loss percent << 24 | lost count (u32).
        RrLoss = 0x2f => "RR_LOSS",
        /// Receiver report: packets received (u32).
        RrPkts = 0x30 => "RR_PKTS",
        /// Receiver report: maximum playout delay in ms (u16).
        RrDelay = 0x31 => "RR_DELAY",
        /// Receiver report: frames dropped (u32).
        RrDropped = 0x32 => "RR_DROPPED",
        /// Receiver report: frames received out of order (u32).
        RrOoo = 0x33 => "RR_OOO",
        /// Channel variable `name=value` (string; Asterisk).
        Variable = 0x34 => "VARIABLE",
        /// OSP token block (Asterisk).
        OspToken = 0x35 => "OSPTOKEN",
        /// Call token (empty = request, else opaque token; Asterisk).
        CallToken = 0x36 => "CALLTOKEN",
        /// 64-bit capability (version byte + u64; Asterisk).
        Capability2 = 0x37 => "CAPABILITY2",
        /// 64-bit format (version byte + u64; Asterisk).
        Format2 = 0x38 => "FORMAT2",
        /// Calling ANI2 (u32; Asterisk).
        CallingAni2 = 0x39 => "CALLINGANI2",
    }
}

/// Size of an IE header (type and length bytes).
pub const IE_HEADER_LEN: usize = 2;
/// Largest IE data length.
pub const IE_MAX_DATA_LEN: usize = 255;

/// One IE inside a received frame, borrowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IeRef<'a> {
    /// The IE type.
    pub ie_type: IeType,
    /// The IE data (0..=255 bytes).
    pub data: &'a [u8],
}

/// Iterator over the IEs of a raw IE block. Yields one error and stops when
/// the block does not end on an IE boundary.
#[derive(Debug, Clone)]
pub struct IeIter<'a> {
    block: &'a [u8],
    pos: usize,
    done: bool,
}

impl<'a> IeIter<'a> {
    /// Walks `block` (the payload of an IAX full frame).
    pub fn new(block: &'a [u8]) -> Self {
        Self {
            block,
            pos: 0,
            done: false,
        }
    }
}

impl<'a> Iterator for IeIter<'a> {
    type Item = Result<IeRef<'a>>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let rest = self.block.get(self.pos..).unwrap_or_default();
        match rest {
            [] => {
                self.done = true;
                None
            }
            [ty, len, tail @ ..] => {
                let len = usize::from(*len);
                if let Some(data) = tail.get(..len) {
                    self.pos += IE_HEADER_LEN + len;
                    Some(Ok(IeRef {
                        ie_type: IeType::from(*ty),
                        data,
                    }))
                } else {
                    self.done = true;
                    Some(Err(WireError::truncated(
                        Structure::Ie,
                        self.pos,
                        IE_HEADER_LEN + len,
                        rest.len(),
                    )))
                }
            }
            [_] => {
                self.done = true;
                Some(Err(WireError::truncated(
                    Structure::Ie,
                    self.pos,
                    IE_HEADER_LEN,
                    1,
                )))
            }
        }
    }
}

/// An IE block known to end exactly on an IE boundary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IeBlock<'a>(&'a [u8]);

impl<'a> IeBlock<'a> {
    /// Checks that `block` is a sequence of whole IEs.
    pub fn new_checked(block: &'a [u8]) -> Result<Self> {
        for ie in IeIter::new(block) {
            ie?;
        }
        Ok(Self(block))
    }

    /// The IEs in order.
    pub fn iter(&self) -> impl Iterator<Item = IeRef<'a>> + 'a {
        // Checked in `new_checked`: no element is an error.
        IeIter::new(self.0).map_while(core::result::Result::ok)
    }

    /// The raw bytes.
    pub fn as_bytes(&self) -> &'a [u8] {
        self.0
    }
}

/// An owned IE: a type and up to 255 bytes of data.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Ie {
    ie_type: IeType,
    data: Vec<u8>,
}

impl Ie {
    /// An IE with raw data; errors when the data is longer than 255 bytes.
    pub fn new(ie_type: IeType, data: impl Into<Vec<u8>>) -> Result<Self> {
        let data = data.into();
        if data.len() > IE_MAX_DATA_LEN {
            return Err(WireError::IeTooLong {
                ie: ie_type,
                len: data.len(),
            });
        }
        Ok(Self { ie_type, data })
    }

    /// An IE with no data (e.g. AUTOANSWER, or a CALLTOKEN request).
    pub fn empty(ie_type: IeType) -> Self {
        Self {
            ie_type,
            data: Vec::new(),
        }
    }

    /// A string IE; errors when longer than 255 bytes.
    pub fn string(ie_type: IeType, value: &str) -> Result<Self> {
        Self::new(ie_type, value.as_bytes())
    }

    /// A one-byte IE.
    pub fn u8(ie_type: IeType, value: u8) -> Self {
        Self {
            ie_type,
            data: vec![value],
        }
    }

    /// A two-byte big-endian IE.
    pub fn u16(ie_type: IeType, value: u16) -> Self {
        Self {
            ie_type,
            data: value.to_be_bytes().to_vec(),
        }
    }

    /// A four-byte big-endian IE.
    pub fn u32(ie_type: IeType, value: u32) -> Self {
        Self {
            ie_type,
            data: value.to_be_bytes().to_vec(),
        }
    }

    /// A versioned 64-bit IE (FORMAT2, CAPABILITY2): version 0, then the value.
    pub fn versioned_u64(ie_type: IeType, value: u64) -> Self {
        let mut data = Vec::with_capacity(9);
        data.push(0);
        data.extend_from_slice(&value.to_be_bytes());
        Self { ie_type, data }
    }

    /// VERSION 2, the first IE of every NEW.
    pub fn version() -> Self {
        Self::u16(IeType::Version, 2)
    }

    /// FORMAT (low 32 bits of `format`).
    pub fn format(format: MediaFormat) -> Self {
        Self::u32(IeType::Format, format.low_bits())
    }

    /// FORMAT2 (all 64 bits of `format`).
    pub fn format2(format: MediaFormat) -> Self {
        Self::versioned_u64(IeType::Format2, format.bits())
    }

    /// CAPABILITY (low 32 bits of `caps`).
    pub fn capability(caps: MediaFormat) -> Self {
        Self::u32(IeType::Capability, caps.low_bits())
    }

    /// CAPABILITY2 (all 64 bits of `caps`).
    pub fn capability2(caps: MediaFormat) -> Self {
        Self::versioned_u64(IeType::Capability2, caps.bits())
    }

    /// AUTHMETHODS.
    pub fn auth_methods(methods: AuthMethods) -> Self {
        Self::u16(IeType::AuthMethods, methods.bits())
    }

    /// ENCRYPTION (two bytes, as Asterisk sends it).
    pub fn encryption(enc: Encryption) -> Self {
        Self::u16(IeType::Encryption, enc.bits())
    }

    /// APPARENT ADDR as Asterisk emits it (little-endian family).
    pub fn apparent_addr(addr: ApparentAddr) -> Self {
        Self {
            ie_type: IeType::ApparentAddr,
            data: addr.to_bytes(),
        }
    }

    /// DATETIME.
    pub fn datetime(dt: IaxDateTime) -> Self {
        Self::u32(IeType::DateTime, dt.to_bits())
    }

    /// CALLNO.
    pub fn callno(n: CallNumber) -> Self {
        Self::u16(IeType::CallNo, n.get())
    }

    /// CALLTOKEN: empty asks for a token, otherwise the opaque token.
    pub fn calltoken(token: &[u8]) -> Result<Self> {
        Self::new(IeType::CallToken, token)
    }

    /// The IE type.
    pub fn ie_type(&self) -> IeType {
        self.ie_type
    }

    /// The IE data.
    pub fn data(&self) -> &[u8] {
        &self.data
    }

    /// Bytes this IE takes on the wire.
    pub fn buffer_len(&self) -> usize {
        IE_HEADER_LEN + self.data.len()
    }

    /// Writes the IE to the front of `buf`; returns the bytes written.
    pub fn emit(&self, buf: &mut [u8]) -> Result<usize> {
        let needed = self.buffer_len();
        let out = emit_target(buf, needed)?;
        out[0] = self.ie_type.code();
        // `new` keeps data at most 255 bytes.
        out[1] = self.data.len() as u8;
        out[IE_HEADER_LEN..].copy_from_slice(&self.data);
        Ok(needed)
    }
}

impl From<IeRef<'_>> for Ie {
    fn from(ie: IeRef<'_>) -> Self {
        Self {
            ie_type: ie.ie_type,
            data: ie.data.to_vec(),
        }
    }
}

/// An owned, ordered list of IEs: the payload of an IAX full frame.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct IeList(Vec<Ie>);

impl IeList {
    /// An empty list.
    pub fn new() -> Self {
        Self(Vec::new())
    }

    /// Parses an IE block that must end exactly on an IE boundary.
    pub fn parse(block: &[u8]) -> Result<Self> {
        IeIter::new(block)
            .map(|ie| ie.map(Ie::from))
            .collect::<Result<Vec<_>>>()
            .map(Self)
    }

    /// Appends an IE.
    pub fn push(&mut self, ie: Ie) -> &mut Self {
        self.0.push(ie);
        self
    }

    /// Appends an IE (builder style).
    #[must_use]
    pub fn with(mut self, ie: Ie) -> Self {
        self.0.push(ie);
        self
    }

    /// The IEs in order.
    pub fn iter(&self) -> core::slice::Iter<'_, Ie> {
        self.0.iter()
    }

    /// Number of IEs.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True when there are no IEs.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Replaces the data of the first IE of `ie.ie_type()`, or appends `ie`.
    pub fn set(&mut self, ie: Ie) {
        match self.0.iter_mut().find(|e| e.ie_type == ie.ie_type) {
            Some(slot) => *slot = ie,
            None => self.0.push(ie),
        }
    }

    /// Bytes the list takes on the wire.
    pub fn buffer_len(&self) -> usize {
        self.0.iter().map(Ie::buffer_len).sum()
    }

    /// Writes the list to the front of `buf`; returns the bytes written.
    pub fn emit(&self, buf: &mut [u8]) -> Result<usize> {
        let needed = self.buffer_len();
        if buf.len() < needed {
            return Err(WireError::BufferTooSmall {
                needed,
                got: buf.len(),
            });
        }
        let mut pos = 0;
        for ie in &self.0 {
            pos += ie.emit(&mut buf[pos..])?;
        }
        Ok(pos)
    }
}

impl FromIterator<Ie> for IeList {
    fn from_iter<I: IntoIterator<Item = Ie>>(iter: I) -> Self {
        Self(iter.into_iter().collect())
    }
}

impl<'a> IntoIterator for &'a IeList {
    type Item = &'a Ie;
    type IntoIter = core::slice::Iter<'a, Ie>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

fn bad_len(ie: IeType, expected: &'static str, got: usize) -> WireError {
    WireError::IeBadLength { ie, expected, got }
}

/// Decodes a string IE.
pub fn decode_str(ie: IeType, data: &[u8]) -> Result<&str> {
    core::str::from_utf8(data).map_err(|_| WireError::IeBadValue {
        ie,
        why: "not UTF-8",
    })
}

/// Decodes a one-byte IE.
pub fn decode_u8(ie: IeType, data: &[u8]) -> Result<u8> {
    match data {
        [b] => Ok(*b),
        _ => Err(bad_len(ie, "1", data.len())),
    }
}

/// Decodes a two-byte big-endian IE.
pub fn decode_u16(ie: IeType, data: &[u8]) -> Result<u16> {
    <[u8; 2]>::try_from(data)
        .map(u16::from_be_bytes)
        .map_err(|_| bad_len(ie, "2", data.len()))
}

/// Decodes a four-byte big-endian IE.
pub fn decode_u32(ie: IeType, data: &[u8]) -> Result<u32> {
    <[u8; 4]>::try_from(data)
        .map(u32::from_be_bytes)
        .map_err(|_| bad_len(ie, "4", data.len()))
}

/// Decodes a versioned 64-bit IE (FORMAT2, CAPABILITY2); only version 0 is
/// defined.
pub fn decode_versioned_u64(ie: IeType, data: &[u8]) -> Result<u64> {
    match data {
        [0, rest @ ..] if rest.len() == 8 => {
            let mut b = [0u8; 8];
            b.copy_from_slice(rest);
            Ok(u64::from_be_bytes(b))
        }
        [_, rest @ ..] if rest.len() == 8 => Err(WireError::IeBadValue {
            ie,
            why: "unknown version (only 0 is defined)",
        }),
        _ => Err(bad_len(ie, "9", data.len())),
    }
}

/// Lookup and typed decoding of IEs, shared by the borrowed [`IeBlock`] and
/// the owned [`IeList`].
///
/// Each typed accessor returns `Ok(None)` when the IE is absent and an error
/// when it is present but malformed; callers that want Asterisk's leniency
/// (ignore a malformed fixed-size IE) use `.ok().flatten()`.
pub trait IeLookup {
    /// The data of the first IE of type `ie`.
    fn find(&self, ie: IeType) -> Option<&[u8]>;

    /// True when an IE of type `ie` is present.
    fn contains(&self, ie: IeType) -> bool {
        self.find(ie).is_some()
    }

    /// A string IE.
    fn str_ie(&self, ie: IeType) -> Result<Option<&str>> {
        self.find(ie).map(|d| decode_str(ie, d)).transpose()
    }

    /// A one-byte IE.
    fn u8_ie(&self, ie: IeType) -> Result<Option<u8>> {
        self.find(ie).map(|d| decode_u8(ie, d)).transpose()
    }

    /// A two-byte IE.
    fn u16_ie(&self, ie: IeType) -> Result<Option<u16>> {
        self.find(ie).map(|d| decode_u16(ie, d)).transpose()
    }

    /// A four-byte IE.
    fn u32_ie(&self, ie: IeType) -> Result<Option<u32>> {
        self.find(ie).map(|d| decode_u32(ie, d)).transpose()
    }

    /// CALLED NUMBER.
    fn called_number(&self) -> Result<Option<&str>> {
        self.str_ie(IeType::CalledNumber)
    }

    /// CALLING NUMBER.
    fn calling_number(&self) -> Result<Option<&str>> {
        self.str_ie(IeType::CallingNumber)
    }

    /// CALLING NAME.
    fn calling_name(&self) -> Result<Option<&str>> {
        self.str_ie(IeType::CallingName)
    }

    /// CALLED CONTEXT.
    fn called_context(&self) -> Result<Option<&str>> {
        self.str_ie(IeType::CalledContext)
    }

    /// USERNAME.
    fn username(&self) -> Result<Option<&str>> {
        self.str_ie(IeType::Username)
    }

    /// PASSWORD (plaintext authentication).
    fn password(&self) -> Result<Option<&str>> {
        self.str_ie(IeType::Password)
    }

    /// VERSION.
    fn version(&self) -> Result<Option<u16>> {
        self.u16_ie(IeType::Version)
    }

    /// The desired format: FORMAT2 when present with version 0, else FORMAT
    /// (PROTOCOL.md 9: the 64-bit IE wins).
    fn format(&self) -> Result<Option<MediaFormat>> {
        wide_or_narrow(self, IeType::Format2, IeType::Format)
    }

    /// The capability: CAPABILITY2 when present with version 0, else
    /// CAPABILITY.
    fn capability(&self) -> Result<Option<MediaFormat>> {
        wide_or_narrow(self, IeType::Capability2, IeType::Capability)
    }

    /// AUTHMETHODS.
    fn auth_methods(&self) -> Result<Option<AuthMethods>> {
        Ok(self
            .u16_ie(IeType::AuthMethods)?
            .map(AuthMethods::from_bits))
    }

    /// CHALLENGE, raw (a decimal string in AUTHREQ/REGAUTH, 16 key bytes in
    /// RTKEY).
    fn challenge(&self) -> Option<&[u8]> {
        self.find(IeType::Challenge)
    }

    /// MD5 RESULT.
    fn md5_result(&self) -> Result<Option<&str>> {
        self.str_ie(IeType::Md5Result)
    }

    /// RSA RESULT.
    fn rsa_result(&self) -> Result<Option<&str>> {
        self.str_ie(IeType::RsaResult)
    }

    /// APPARENT ADDR.
    fn apparent_addr(&self) -> Result<Option<ApparentAddr>> {
        self.find(IeType::ApparentAddr)
            .map(ApparentAddr::parse)
            .transpose()
    }

    /// REFRESH (seconds).
    fn refresh(&self) -> Result<Option<u16>> {
        self.u16_ie(IeType::Refresh)
    }

    /// CALLNO.
    fn callno(&self) -> Result<Option<CallNumber>> {
        match self.u16_ie(IeType::CallNo)? {
            None => Ok(None),
            Some(n) => CallNumber::new(n)
                .map(Some)
                .map_err(|_| WireError::IeBadValue {
                    ie: IeType::CallNo,
                    why: "call number above 32767",
                }),
        }
    }

    /// CAUSE (text).
    fn cause(&self) -> Result<Option<&str>> {
        self.str_ie(IeType::Cause)
    }

    /// CAUSECODE (Q.850).
    fn causecode(&self) -> Result<Option<u8>> {
        self.u8_ie(IeType::CauseCode)
    }

    /// IAX UNKNOWN (the subclass an UNSUPPORT answers).
    fn iax_unknown(&self) -> Result<Option<u8>> {
        self.u8_ie(IeType::IaxUnknown)
    }

    /// CALLTOKEN: `Some(&[])` is a request ("I support tokens"), otherwise
    /// the opaque token.
    fn calltoken(&self) -> Option<&[u8]> {
        self.find(IeType::CallToken)
    }

    /// DATETIME.
    fn datetime(&self) -> Result<Option<IaxDateTime>> {
        Ok(self.u32_ie(IeType::DateTime)?.map(IaxDateTime::from_bits))
    }

    /// ENCRYPTION (Asterisk sends two bytes; one is accepted too).
    fn encryption(&self) -> Result<Option<Encryption>> {
        match self.find(IeType::Encryption) {
            None => Ok(None),
            Some([b]) => Ok(Some(Encryption::from_bits(u16::from(*b)))),
            Some(d) => decode_u16(IeType::Encryption, d)
                .map(Encryption::from_bits)
                .map(Some),
        }
    }

    /// TRANSFERID.
    fn transfer_id(&self) -> Result<Option<u32>> {
        self.u32_ie(IeType::TransferId)
    }

    /// CODEC_PREFS.
    fn codec_prefs(&self) -> Result<Option<&str>> {
        self.str_ie(IeType::CodecPrefs)
    }

    /// The RR_* receiver report of a PONG; `None` when it carries none.
    fn receiver_report(&self) -> Result<Option<ReceiverReport>> {
        let rr = ReceiverReport {
            jitter: self.u32_ie(IeType::RrJitter)?,
            loss: self.u32_ie(IeType::RrLoss)?,
            packets: self.u32_ie(IeType::RrPkts)?,
            delay_ms: self.u16_ie(IeType::RrDelay)?,
            dropped: self.u32_ie(IeType::RrDropped)?,
            out_of_order: self.u32_ie(IeType::RrOoo)?,
        };
        Ok((rr != ReceiverReport::default()).then_some(rr))
    }
}

fn wide_or_narrow<L: IeLookup + ?Sized>(
    ies: &L,
    wide: IeType,
    narrow: IeType,
) -> Result<Option<MediaFormat>> {
    if let Some(data) = ies.find(wide) {
        // Asterisk ignores a 64-bit IE of another version and falls back.
        if let Ok(bits) = decode_versioned_u64(wide, data) {
            return Ok(Some(MediaFormat::from_bits(bits)));
        }
    }
    Ok(ies
        .u32_ie(narrow)?
        .map(|b| MediaFormat::from_bits(u64::from(b))))
}

impl IeLookup for IeBlock<'_> {
    fn find(&self, ie: IeType) -> Option<&[u8]> {
        self.iter().find(|e| e.ie_type == ie).map(|e| e.data)
    }
}

impl Extend<Ie> for IeList {
    fn extend<I: IntoIterator<Item = Ie>>(&mut self, iter: I) {
        self.0.extend(iter);
    }
}

impl IeLookup for IeList {
    fn find(&self, ie: IeType) -> Option<&[u8]> {
        self.0.iter().find(|e| e.ie_type == ie).map(|e| &e.data[..])
    }
}
