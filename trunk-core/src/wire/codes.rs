//! Frame types and subclass codes (RFC 5456 sections 8.2, 8.3, 8.4; PROTOCOL.md 3-5).

use super::macros::code_enum;

code_enum! {
    /// Frame type of a full frame (byte 10; RFC 5456 section 8.2).
    pub enum FrameType(u8) {
        /// DTMF digit; Asterisk's DTMF_END (subclass: ASCII digit).
        Dtmf = 0x01 => "DTMF",
        /// Voice (subclass: media format).
        Voice = 0x02 => "Voice",
        /// Video (subclass: media format, 0x40 = end of frame).
        Video = 0x03 => "Video",
        /// Session control (subclass: [`ControlSubclass`]).
        Control = 0x04 => "Control",
        /// Null; must not be sent.
        Null = 0x05 => "Null",
        /// IAX signalling (subclass: [`IaxSubclass`], payload: IEs).
        Iax = 0x06 => "IAX",
        /// Text (UTF-8; Asterisk appends a NUL).
        Text = 0x07 => "Text",
        /// Image.
        Image = 0x08 => "Image",
        /// HTML.
        Html = 0x09 => "HTML",
        /// Comfort noise (subclass: level in -dBov).
        Cng = 0x0a => "CNG",
        /// Modem (Asterisk; subclass 1 T.38, 2 V.150).
        Modem = 0x0b => "Modem",
        /// DTMF key press begins (Asterisk).
        DtmfBegin = 0x0c => "DTMF_BEGIN",
    }
}

code_enum! {
    /// IAX frame subclass (frame type 0x06; RFC 5456 section 8.4, PROTOCOL.md 4).
    pub enum IaxSubclass(u8) {
        /// Start a call.
        New = 1 => "NEW",
        /// Per-call keepalive / RTT probe.
        Ping = 2 => "PING",
        /// Answer to PING or POKE.
        Pong = 3 => "PONG",
        /// Explicit acknowledgement.
        Ack = 4 => "ACK",
        /// End a call.
        Hangup = 5 => "HANGUP",
        /// Refuse a call.
        Reject = 6 => "REJECT",
        /// Accept a call.
        Accept = 7 => "ACCEPT",
        /// Authentication challenge.
        AuthReq = 8 => "AUTHREQ",
        /// Authentication answer.
        AuthRep = 9 => "AUTHREP",
        /// No such call.
        Inval = 10 => "INVAL",
        /// Lag probe.
        LagRq = 11 => "LAGRQ",
        /// Lag reply.
        LagRp = 12 => "LAGRP",
        /// Registration request.
        RegReq = 13 => "REGREQ",
        /// Registration challenge.
        RegAuth = 14 => "REGAUTH",
        /// Registration accepted.
        RegAck = 15 => "REGACK",
        /// Registration refused.
        RegRej = 16 => "REGREJ",
        /// Unregister.
        RegRel = 17 => "REGREL",
        /// Retransmit request.
        Vnak = 18 => "VNAK",
        /// Dialplan query.
        DpReq = 19 => "DPREQ",
        /// Dialplan reply.
        DpRep = 20 => "DPREP",
        /// Dial on a TBD call.
        Dial = 21 => "DIAL",
        /// Native transfer request.
        TxReq = 22 => "TXREQ",
        /// Transfer connect.
        TxCnt = 23 => "TXCNT",
        /// Transfer accepted.
        TxAcc = 24 => "TXACC",
        /// Transfer ready.
        TxReady = 25 => "TXREADY",
        /// Transfer release.
        TxRel = 26 => "TXREL",
        /// Transfer rejected.
        TxRej = 27 => "TXREJ",
        /// Stop sending media.
        Quelch = 28 => "QUELCH",
        /// Resume media.
        Unquelch = 29 => "UNQUELCH",
        /// Reachability probe.
        Poke = 30 => "POKE",
        /// Paging (Asterisk).
        Page = 31 => "PAGE",
        /// Message waiting.
        Mwi = 32 => "MWI",
        /// Unsupported subclass reply.
        Unsupport = 33 => "UNSUPPORT",
        /// Blind transfer request.
        Transfer = 34 => "TRANSFER",
        /// Device provisioning (Asterisk).
        Provision = 35 => "PROVISION",
        /// Firmware download request (Asterisk).
        FwDownl = 36 => "FWDOWNL",
        /// Firmware block (Asterisk).
        FwData = 37 => "FWDATA",
        /// Media-only transfer (Asterisk).
        TxMedia = 38 => "TXMEDIA",
        /// Encryption key rotation (Asterisk).
        RtKey = 39 => "RTKEY",
        /// Call-token challenge (Asterisk).
        CallToken = 40 => "CALLTOKEN",
    }
}

impl IaxSubclass {
    /// True for the subclasses after which a sender does *not* increment its
    /// OSeqno and a receiver does not advance its ISeqno (PROTOCOL.md 6.1).
    pub fn is_unsequenced(self) -> bool {
        matches!(
            self,
            Self::Ack | Self::Vnak | Self::Inval | Self::TxCnt | Self::TxAcc
        )
    }

    /// True for the requests that can create state at the receiver and so
    /// take part in the CALLTOKEN exchange (PROTOCOL.md 12).
    pub fn creates_call(self) -> bool {
        matches!(
            self,
            Self::New | Self::RegReq | Self::RegRel | Self::FwDownl
        )
    }
}

code_enum! {
    /// Control frame subclass (frame type 0x04; RFC 5456 section 8.3,
    /// PROTOCOL.md 5). The wire byte 0xFF is Asterisk's -1 ("stop sounds").
    pub enum ControlSubclass(u8) {
        /// Other end hung up.
        Hangup = 1 => "HANGUP",
        /// Local ring.
        Ring = 2 => "RING",
        /// Remote end is ringing.
        Ringing = 3 => "RINGING",
        /// Remote end answered.
        Answer = 4 => "ANSWER",
        /// Remote end is busy.
        Busy = 5 => "BUSY",
        /// Take off hook.
        TakeOffHook = 6 => "TAKEOFFHOOK",
        /// Line is off hook.
        OffHook = 7 => "OFFHOOK",
        /// Congestion.
        Congestion = 8 => "CONGESTION",
        /// Flash hook.
        Flash = 9 => "FLASH",
        /// Wink.
        Wink = 10 => "WINK",
        /// Set an option.
        Option = 11 => "OPTION",
        /// Radio key.
        RadioKey = 12 => "RADIO_KEY",
        /// Radio unkey.
        RadioUnkey = 13 => "RADIO_UNKEY",
        /// Call progress.
        Progress = 14 => "PROGRESS",
        /// Call proceeding.
        Proceeding = 15 => "PROCEEDING",
        /// Call placed on hold.
        Hold = 16 => "HOLD",
        /// Call taken off hold.
        Unhold = 17 => "UNHOLD",
        /// Video update request.
        VidUpdate = 18 => "VIDUPDATE",
        /// Connected line update.
        ConnectedLine = 22 => "CONNECTED_LINE",
        /// Redirecting update.
        Redirecting = 23 => "REDIRECTING",
        /// T.38 parameters.
        T38Parameters = 24 => "T38_PARAMETERS",
        /// Advice of charge.
        Aoc = 28 => "AOC",
        /// Incomplete number.
        Incomplete = 30 => "INCOMPLETE",
        /// Malicious call identification.
        Mcid = 31 => "MCID",
        /// Asterisk's -1: stop any indication sounds.
        StopSounds = 0xff => "stop sounds",
    }
}

code_enum! {
    /// Meta command of a meta frame (byte 2 of a datagram starting 0x0000;
    /// RFC 5456 section 8.1.3).
    pub enum MetaCommand(u8) {
        /// Meta trunk frame.
        Trunk = 0x01 => "trunk",
        /// IANA "T.38 primary IFP"; Asterisk's META_VIDEO, never sent.
        Video = 0x02 => "video",
    }
}
