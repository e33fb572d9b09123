//! Which frames a receiver accepts: every rule of RFC 6455 (§5.1, §5.2, §5.4, §5.5,
//! §10.4) and RFC 7692 (§6.1) that a frame header breaks given what came before it,
//! each written once, here.
//!
//! [`FrameRules`] holds what the rules depend on besides the header: who receives the
//! frame, the RSV bits extensions define, whether permessage-deflate is on, and the
//! size limits. The data message in progress is passed in ([`InProgress`]): the
//! connection already tracks it, and so do the learning tools. Two ways to ask:
//!
//! - [`FrameRules::check`], for the connection: the first rule broken, in the order
//!   below, or what the frame is ([`FrameClass`]). Inlined, no allocation.
//! - [`FrameRules::violations`], for the inspector and the tap: every rule broken,
//!   in the same order.
//!
//! The order: the reserved bits and opcodes (§5.2), the control frame rules (§5.5),
//! masking (§5.1), RSV1 where permessage-deflate forbids it (RFC 7692 §6.1), the frame
//! size (§10.4), the message order (§5.4), the message size (§10.4).
//!
//! Why a module beside `frame.rs` rather than in it (or in a `frame/` folder): a
//! [`FrameHeader`] is the wire syntax, true of a frame anywhere, while each rule here
//! needs context a header does not carry — the role, the extensions, the limits, the
//! message in progress. The rules use `frame` and `error`; the connection and the
//! learning tools use the rules; nothing below imports them, so the file stays a layer
//! of its own (`frame/mod.rs` calling a `frame/rules.rs` that reads its headers would
//! be an import circle). [`FrameHeader::check`] is defined here for the same reason.
//!
//! ```
//! use rfc6455::frame::FrameHeader;
//! use rfc6455::rules::{FrameClass, FrameRules, InProgress};
//! use rfc6455::{OpCode, ProtocolError, Role};
//!
//! let server = FrameRules::new(Role::Server).max_frame_size(1 << 20);
//! let frame = |fin, opcode, payload_len| FrameHeader { fin, rsv: 0, opcode, masking_key: Some([1, 2, 3, 4]), payload_len };
//!
//! // RFC 6455 §5.4: a text message in two fragments.
//! assert_eq!(server.check(&frame(false, OpCode::Text, 3), None), Ok(FrameClass::Start { text: true, compressed: false }));
//! let hel = InProgress { compressed: false, len: 3 };
//! assert_eq!(server.check(&frame(true, OpCode::Continuation, 2), Some(hel)), Ok(FrameClass::Continuation));
//! // A ping may come between them; a new text frame may not.
//! assert_eq!(server.check(&frame(true, OpCode::Ping, 0), Some(hel)), Ok(FrameClass::Control));
//! assert_eq!(server.check(&frame(true, OpCode::Text, 1), Some(hel)), Err(ProtocolError::ExpectedContinuation));
//!
//! // A frame can break several rules: the connection fails on the first, the tools list all.
//! let mut bad = frame(false, OpCode::Ping, 200);
//! bad.masking_key = None;
//! let all: Vec<_> = server.violations(&bad, None).collect();
//! assert_eq!(all, [
//!     ProtocolError::ControlFrameTooLong(200),
//!     ProtocolError::FragmentedControlFrame,
//!     ProtocolError::UnmaskedClientFrame,
//! ]);
//! assert_eq!(server.check(&bad, None), Err(all[0].clone()));
//! ```

use crate::error::ProtocolError;
use crate::frame::{FrameHeader, OpCode, Role, MAX_CONTROL_PAYLOAD, RSV1};

/// What the rules depend on besides the header and the message in progress: the
/// receiver's role, the RSV bits negotiated extensions define, permessage-deflate,
/// and the size limits. Small and `Copy`: a connection builds it once.
///
/// ```
/// use rfc6455::frame::FrameHeader;
/// use rfc6455::rules::FrameRules;
/// use rfc6455::{OpCode, ProtocolError, Role};
///
/// // RFC 7692 §7.2.3.1: a compressed "Hello" from a server, RSV1 set.
/// let hello = FrameHeader { fin: true, rsv: 0b100, opcode: OpCode::Text, masking_key: None, payload_len: 7 };
/// let plain = FrameRules::new(Role::Client);
/// assert_eq!(plain.check(&hello, None), Err(ProtocolError::ReservedBitsSet(0b100)));
/// assert!(plain.deflate(true).check(&hello, None).is_ok());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameRules {
    /// The role of the end that receives the frames (RFC 6455 §5.1: servers receive
    /// masked frames, clients unmasked ones).
    receiver: Role,
    /// RSV bits, as `0b0RRR`, that negotiated extensions other than permessage-deflate
    /// define (RFC 6455 §5.2).
    allowed_rsv: u8,
    /// permessage-deflate is on: RSV1 marks a compressed message (RFC 7692 §6).
    deflate: bool,
    /// The largest frame payload accepted: `u64::MAX` for none (no payload length is
    /// that long, RFC 6455 §5.2).
    max_frame_size: u64,
    /// The largest message accepted, all fragments together: `u64::MAX` for none.
    max_message_size: u64,
}

/// The data message a frame would continue (RFC 6455 §5.4): what the rules need to know
/// of it. `None` in its place means no message is in progress.
///
/// ```
/// use rfc6455::frame::FrameHeader;
/// use rfc6455::rules::{FrameRules, InProgress};
/// use rfc6455::{OpCode, ProtocolError, Role};
///
/// let rules = FrameRules::new(Role::Client).max_message_size(10);
/// let more = FrameHeader { fin: true, rsv: 0, opcode: OpCode::Continuation, masking_key: None, payload_len: 4 };
/// // 8 bytes so far and 4 more pass the limit of 10 (RFC 6455 §10.4)...
/// let so_far = InProgress { compressed: false, len: 8 };
/// assert_eq!(rules.check(&more, Some(so_far)), Err(ProtocolError::MessageTooBig { len: 12, max: 10 }));
/// // ...and with no message to continue, the frame breaks §5.4 first.
/// assert_eq!(rules.check(&more, None), Err(ProtocolError::UnexpectedContinuation));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InProgress {
    /// Its first frame had RSV1 (RFC 7692 §6): its size is held to the limit as it
    /// inflates, by whoever inflates it, not here.
    pub compressed: bool,
    /// Its payload bytes so far (for a compressed message: not counted here).
    pub len: u64,
}

/// What a frame that breaks no rule is to the message order (RFC 6455 §5.4, §5.5).
///
/// ```
/// use rfc6455::frame::FrameHeader;
/// use rfc6455::rules::{FrameClass, FrameRules};
/// use rfc6455::{OpCode, Role};
///
/// // RFC 6455 §5.7: an unmasked ping with "Hello", to a client.
/// let ping = FrameHeader { fin: true, rsv: 0, opcode: OpCode::Ping, masking_key: None, payload_len: 5 };
/// assert_eq!(FrameRules::new(Role::Client).check(&ping, None), Ok(FrameClass::Control));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameClass {
    /// Close, Ping or Pong: whole (FIN set), at most 125 bytes, and allowed between the
    /// fragments of a message (§5.5).
    Control,
    /// Text or Binary: the first frame of a message.
    Start {
        /// A text message (opcode 0x1), else binary (0x2).
        text: bool,
        /// RSV1 with permessage-deflate: the message is compressed (RFC 7692 §6).
        compressed: bool,
    },
    /// The next fragment of the message in progress.
    Continuation,
}

/// One rule each: [`FrameRules::broken`] states it, [`RULES`] gives the order.
#[derive(Debug, Clone, Copy)]
enum Rule {
    ReservedBits,
    ReservedOpcode,
    ControlFrameLength,
    ControlFrameFin,
    Masking,
    CompressedControlFrame,
    CompressedContinuation,
    FrameSize,
    MessageOrder,
    MessageSize,
}

/// The rules in the order a connection applies them: the first broken one fails it.
/// The first [`HEADER_RULES`] need only the header, the role and the RSV bits.
const RULES: [Rule; 10] = [
    Rule::ReservedBits,
    Rule::ReservedOpcode,
    Rule::ControlFrameLength,
    Rule::ControlFrameFin,
    Rule::Masking,
    Rule::CompressedControlFrame,
    Rule::CompressedContinuation,
    Rule::FrameSize,
    Rule::MessageOrder,
    Rule::MessageSize,
];

/// How many of [`RULES`] hold for a header alone: [`FrameHeader::check`] applies them.
const HEADER_RULES: usize = 5;

impl FrameRules {
    /// The rules for frames received by `receiver`: no extension, no size limit.
    ///
    /// ```
    /// use rfc6455::frame::FrameHeader;
    /// use rfc6455::rules::FrameRules;
    /// use rfc6455::{OpCode, ProtocolError, Role};
    ///
    /// // RFC 6455 §5.7: the client's masked "Hello" is what a server accepts...
    /// let hello = FrameHeader { fin: true, rsv: 0, opcode: OpCode::Text, masking_key: Some([0x37, 0xfa, 0x21, 0x3d]), payload_len: 5 };
    /// assert!(FrameRules::new(Role::Server).check(&hello, None).is_ok());
    /// // ...and a client must refuse it: servers do not mask (§5.1).
    /// assert_eq!(FrameRules::new(Role::Client).check(&hello, None), Err(ProtocolError::MaskedServerFrame));
    /// ```
    #[inline]
    #[must_use]
    pub const fn new(receiver: Role) -> FrameRules {
        FrameRules {
            receiver,
            allowed_rsv: 0,
            deflate: false,
            max_frame_size: u64::MAX,
            max_message_size: u64::MAX,
        }
    }

    /// With the RSV bits (`0b0RRR`, RSV1 the high bit) that negotiated extensions
    /// define (RFC 6455 §5.2); permessage-deflate's RSV1 is set by
    /// [`deflate`](Self::deflate) instead.
    ///
    /// ```
    /// use rfc6455::frame::FrameHeader;
    /// use rfc6455::rules::FrameRules;
    /// use rfc6455::{OpCode, ProtocolError, Role};
    ///
    /// let rsv3 = FrameHeader { fin: true, rsv: 0b001, opcode: OpCode::Binary, masking_key: None, payload_len: 0 };
    /// let rules = FrameRules::new(Role::Client);
    /// assert_eq!(rules.check(&rsv3, None), Err(ProtocolError::ReservedBitsSet(0b001)));
    /// assert!(rules.allowed_rsv(0b001).check(&rsv3, None).is_ok());
    /// ```
    #[inline]
    #[must_use]
    pub const fn allowed_rsv(mut self, bits: u8) -> FrameRules {
        self.allowed_rsv = bits & 0b111;
        self
    }

    /// With permessage-deflate on (RFC 7692) or off: when on, RSV1 marks the first
    /// frame of a compressed message, and is refused on control frames and
    /// continuations (§6.1).
    ///
    /// ```
    /// use rfc6455::frame::FrameHeader;
    /// use rfc6455::rules::FrameRules;
    /// use rfc6455::{OpCode, ProtocolError, Role};
    ///
    /// let compressed_ping = FrameHeader { fin: true, rsv: 0b100, opcode: OpCode::Ping, masking_key: None, payload_len: 0 };
    /// let rules = FrameRules::new(Role::Client).deflate(true);
    /// assert_eq!(rules.check(&compressed_ping, None), Err(ProtocolError::CompressedControlFrame));
    /// ```
    #[inline]
    #[must_use]
    pub const fn deflate(mut self, on: bool) -> FrameRules {
        self.deflate = on;
        self
    }

    /// With a limit on a data frame's payload (RFC 6455 §10.4); control frames are held
    /// to 125 bytes by §5.5 instead.
    ///
    /// ```
    /// use rfc6455::frame::FrameHeader;
    /// use rfc6455::rules::FrameRules;
    /// use rfc6455::{OpCode, ProtocolError, Role};
    ///
    /// let big = FrameHeader { fin: true, rsv: 0, opcode: OpCode::Binary, masking_key: None, payload_len: 1 << 40 };
    /// let rules = FrameRules::new(Role::Client).max_frame_size(16 << 20);
    /// assert_eq!(rules.check(&big, None), Err(ProtocolError::FrameTooBig { len: 1 << 40, max: 16 << 20 }));
    /// ```
    #[inline]
    #[must_use]
    pub const fn max_frame_size(mut self, max: usize) -> FrameRules {
        self.max_frame_size = max as u64;
        self
    }

    /// With a limit on a message, all its fragments together (RFC 6455 §10.4). A
    /// compressed message is not held to it here: its size is known only as it
    /// inflates.
    ///
    /// ```
    /// use rfc6455::frame::FrameHeader;
    /// use rfc6455::rules::FrameRules;
    /// use rfc6455::{OpCode, ProtocolError, Role};
    ///
    /// let text = |rsv| FrameHeader { fin: true, rsv, opcode: OpCode::Text, masking_key: None, payload_len: 100 };
    /// let rules = FrameRules::new(Role::Client).deflate(true).max_message_size(64);
    /// assert_eq!(rules.check(&text(0), None), Err(ProtocolError::MessageTooBig { len: 100, max: 64 }));
    /// assert!(rules.check(&text(0b100), None).is_ok()); // compressed: checked as it inflates
    /// ```
    #[inline]
    #[must_use]
    pub const fn max_message_size(mut self, max: usize) -> FrameRules {
        self.max_message_size = max as u64;
        self
    }

    /// The first rule `header` breaks, given the data message in progress (`None`:
    /// none), or what the frame is. The connection's check: it fails on the first
    /// error (RFC 6455 §7.1.7). Inlined, allocation-free.
    ///
    /// ```
    /// use rfc6455::frame::FrameHeader;
    /// use rfc6455::rules::{FrameClass, FrameRules};
    /// use rfc6455::{OpCode, ProtocolError, Role};
    ///
    /// let rules = FrameRules::new(Role::Client).deflate(true);
    /// // RFC 7692 §7.2.3.1: a compressed "Hello" starts a compressed text message.
    /// let hello = FrameHeader { fin: true, rsv: 0b100, opcode: OpCode::Text, masking_key: None, payload_len: 7 };
    /// assert_eq!(rules.check(&hello, None), Ok(FrameClass::Start { text: true, compressed: true }));
    /// // A continuation with nothing to continue (RFC 6455 §5.4).
    /// let more = FrameHeader { opcode: OpCode::Continuation, rsv: 0, ..hello };
    /// assert_eq!(rules.check(&more, None), Err(ProtocolError::UnexpectedContinuation));
    /// ```
    #[inline]
    pub fn check(
        &self,
        header: &FrameHeader,
        in_progress: Option<InProgress>,
    ) -> Result<FrameClass, ProtocolError> {
        // Whether any rule is broken first, and which one only then: asked as a yes or
        // no, each rule compiles to its condition alone (the error it would build is
        // dropped unused), on the path every frame takes.
        if RULES
            .iter()
            .any(|&rule| self.broken(rule, header, in_progress).is_some())
        {
            return Err(self.first_broken(header, in_progress));
        }
        // Only a reserved opcode has no class, and it broke a rule above.
        self.class(header)
            .ok_or(ProtocolError::ReservedOpcode(header.opcode.bits()))
    }

    /// The first rule `header` breaks, which [`check`](Self::check) has seen it break.
    #[cold]
    #[inline(never)]
    fn first_broken(&self, header: &FrameHeader, in_progress: Option<InProgress>) -> ProtocolError {
        self.violations(header, in_progress)
            .next()
            .expect("check saw a rule broken")
    }

    /// Every rule `header` breaks, given the data message in progress, in the order
    /// [`check`](Self::check) applies them: for tools that report a frame rather than
    /// refuse it (the inspector, the tap).
    ///
    /// ```
    /// use rfc6455::frame::FrameHeader;
    /// use rfc6455::rules::FrameRules;
    /// use rfc6455::{OpCode, ProtocolError, Role};
    ///
    /// // Sent to a server: RSV2 without an extension, opcode 0x3, no mask.
    /// let header = FrameHeader { fin: true, rsv: 0b010, opcode: OpCode::Reserved(0x3), masking_key: None, payload_len: 0 };
    /// let broken: Vec<_> = FrameRules::new(Role::Server).violations(&header, None).collect();
    /// assert_eq!(broken, [
    ///     ProtocolError::ReservedBitsSet(0b010),    // RFC 6455 §5.2
    ///     ProtocolError::ReservedOpcode(0x3),       // §5.2
    ///     ProtocolError::UnmaskedClientFrame,       // §5.1
    /// ]);
    /// ```
    pub fn violations(
        &self,
        header: &FrameHeader,
        in_progress: Option<InProgress>,
    ) -> impl Iterator<Item = ProtocolError> {
        let (rules, header) = (*self, *header);
        RULES
            .into_iter()
            .filter_map(move |rule| rules.broken(rule, &header, in_progress))
    }

    /// What `header` is to the message order, whatever rules it breaks; `None` for a
    /// reserved opcode (RFC 6455 §5.2), which is no frame the RFC defines.
    ///
    /// ```
    /// use rfc6455::frame::FrameHeader;
    /// use rfc6455::rules::{FrameClass, FrameRules};
    /// use rfc6455::{OpCode, Role};
    ///
    /// let rules = FrameRules::new(Role::Client).deflate(true);
    /// let header = |rsv, opcode| FrameHeader { fin: true, rsv, opcode, masking_key: None, payload_len: 0 };
    /// assert_eq!(rules.class(&header(0b100, OpCode::Binary)), Some(FrameClass::Start { text: false, compressed: true }));
    /// assert_eq!(rules.class(&header(0, OpCode::Close)), Some(FrameClass::Control));
    /// assert_eq!(rules.class(&header(0, OpCode::Reserved(0xb))), None);
    /// ```
    #[inline]
    pub fn class(&self, header: &FrameHeader) -> Option<FrameClass> {
        let compressed = self.compresses(header);
        match header.opcode {
            OpCode::Text => Some(FrameClass::Start {
                text: true,
                compressed,
            }),
            OpCode::Binary => Some(FrameClass::Start {
                text: false,
                compressed,
            }),
            OpCode::Continuation => Some(FrameClass::Continuation),
            OpCode::Close | OpCode::Ping | OpCode::Pong => Some(FrameClass::Control),
            OpCode::Reserved(_) => None,
        }
    }

    /// RSV1 with permessage-deflate on: "Per-Message Compressed" (RFC 7692 §6).
    #[inline]
    fn compresses(&self, header: &FrameHeader) -> bool {
        self.deflate && header.rsv & RSV1 != 0
    }

    /// The error `rule` names if `header` breaks it. Each rule of the module is written
    /// here, once.
    #[inline(always)]
    fn broken(
        &self,
        rule: Rule,
        header: &FrameHeader,
        in_progress: Option<InProgress>,
    ) -> Option<ProtocolError> {
        let control = header.opcode.is_control();
        let len = header.payload_len;
        match rule {
            // RFC 6455 §5.2: "MUST be 0 unless an extension is negotiated that defines
            // meanings for non-zero values"; permessage-deflate defines RSV1 (RFC 7692 §6).
            Rule::ReservedBits => {
                let allowed = self.allowed_rsv | if self.deflate { RSV1 } else { 0 };
                (header.rsv & !allowed != 0).then_some(ProtocolError::ReservedBitsSet(header.rsv))
            }
            // RFC 6455 §5.2: "If an unknown opcode is received, the receiving endpoint
            // MUST _Fail the WebSocket Connection_."
            Rule::ReservedOpcode => match header.opcode {
                OpCode::Reserved(bits) => Some(ProtocolError::ReservedOpcode(bits)),
                _ => None,
            },
            // RFC 6455 §5.5: "All control frames MUST have a payload length of 125 bytes
            // or less and MUST NOT be fragmented."
            Rule::ControlFrameLength => (control && len > MAX_CONTROL_PAYLOAD as u64)
                .then_some(ProtocolError::ControlFrameTooLong(len)),
            Rule::ControlFrameFin => {
                (control && !header.fin).then_some(ProtocolError::FragmentedControlFrame)
            }
            // RFC 6455 §5.1: a server closes on an unmasked frame, a client on a masked one.
            Rule::Masking => match (self.receiver, header.masking_key.is_some()) {
                (Role::Server, false) => Some(ProtocolError::UnmaskedClientFrame),
                (Role::Client, true) => Some(ProtocolError::MaskedServerFrame),
                _ => None,
            },
            // RFC 7692 §6.1: RSV1 is set on the first frame of a compressed data message
            // only: not on a control frame, not on a continuation.
            Rule::CompressedControlFrame => (control && self.compresses(header))
                .then_some(ProtocolError::CompressedControlFrame),
            Rule::CompressedContinuation => (header.opcode == OpCode::Continuation
                && self.compresses(header))
            .then_some(ProtocolError::CompressedContinuation),
            // RFC 6455 §10.4: a limit on frame size, "to protect themselves". A control
            // frame's limit is §5.5's.
            Rule::FrameSize => {
                (!control && len > self.max_frame_size).then_some(ProtocolError::FrameTooBig {
                    len,
                    max: self.max_frame_size as usize,
                })
            }
            // RFC 6455 §5.4: a continuation continues a message; a new message waits for
            // the end of the one in progress (control frames may come between).
            Rule::MessageOrder => match (header.opcode, in_progress) {
                (OpCode::Continuation, None) => Some(ProtocolError::UnexpectedContinuation),
                (OpCode::Text | OpCode::Binary, Some(_)) => {
                    Some(ProtocolError::ExpectedContinuation)
                }
                _ => None,
            },
            // RFC 6455 §10.4: a limit on "the total message size after reassembly".
            // A compressed message's size is its inflated size: held to the limit as it
            // inflates, by whoever inflates it.
            Rule::MessageSize => {
                let (so_far, compressed) = match (header.opcode, in_progress) {
                    (OpCode::Continuation, Some(message)) => (message.len, message.compressed),
                    _ => (0, self.compresses(header)),
                };
                let total = so_far.saturating_add(len);
                (!control && !compressed && total > self.max_message_size).then_some(
                    ProtocolError::MessageTooBig {
                        len: total,
                        max: self.max_message_size as usize,
                    },
                )
            }
        }
    }
}

impl FrameHeader {
    /// Checks the rules of a header alone, the ones that depend only on who receives it
    /// (RFC 6455 §5.1, §5.2, §5.5): `role` is the receiver's role and `allowed_rsv` the
    /// RSV bits that negotiated extensions define. The same rules as
    /// [`FrameRules::check`], which also knows the message order, permessage-deflate and
    /// the size limits.
    ///
    /// ```
    /// use rfc6455::frame::FrameHeader;
    /// use rfc6455::{OpCode, ProtocolError, Role};
    ///
    /// let ping = FrameHeader { fin: true, rsv: 0, opcode: OpCode::Ping, masking_key: None, payload_len: 126 };
    /// assert_eq!(ping.check(Role::Client, 0), Err(ProtocolError::ControlFrameTooLong(126)));
    /// ```
    #[inline]
    pub fn check(&self, role: Role, allowed_rsv: u8) -> Result<(), ProtocolError> {
        let rules = FrameRules::new(role).allowed_rsv(allowed_rsv);
        match RULES[..HEADER_RULES]
            .iter()
            .find_map(|&rule| rules.broken(rule, self, None))
        {
            Some(broken) => Err(broken),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(fin: bool, rsv: u8, opcode: u8, masked: bool, payload_len: u64) -> FrameHeader {
        FrameHeader {
            fin,
            rsv,
            opcode: OpCode::from_bits(opcode),
            masking_key: masked.then_some([1, 2, 3, 4]),
            payload_len,
        }
    }

    /// Every header shape against every context: `check` fails with the first of
    /// `violations`, and passes exactly when there is none.
    #[test]
    fn check_is_the_first_of_the_violations() {
        let states = [
            None,
            Some(InProgress {
                compressed: false,
                len: 0,
            }),
            Some(InProgress {
                compressed: false,
                len: 60,
            }),
            Some(InProgress {
                compressed: true,
                len: 60,
            }),
        ];
        let mut seen = 0;
        for receiver in [Role::Client, Role::Server] {
            for deflate in [false, true] {
                for allowed_rsv in [0, 0b100, 0b011] {
                    for limits in [None, Some((50, 100))] {
                        let mut rules = FrameRules::new(receiver)
                            .allowed_rsv(allowed_rsv)
                            .deflate(deflate);
                        if let Some((frame, message)) = limits {
                            rules = rules.max_frame_size(frame).max_message_size(message);
                        }
                        for opcode in 0..16 {
                            for rsv in 0..8 {
                                for fin in [false, true] {
                                    for masked in [false, true] {
                                        for len in [0, 45, 50, 51, 125, 126, 1 << 40] {
                                            let h = header(fin, rsv, opcode, masked, len);
                                            for state in states {
                                                let first = rules.violations(&h, state).next();
                                                let checked = rules.check(&h, state);
                                                assert_eq!(
                                                    checked.clone().err(),
                                                    first,
                                                    "{h:?} {state:?}"
                                                );
                                                if let Ok(class) = checked {
                                                    assert_eq!(rules.class(&h), Some(class));
                                                    seen += 1;
                                                }
                                            }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        assert!(seen > 1000);
    }

    /// The order of the connection before this module: the reserved bits before the
    /// opcode, the control rules, masking, then RSV1 under permessage-deflate, then
    /// the frame size before the message order, and the message size last.
    #[test]
    fn the_first_error_is_the_one_the_connection_always_gave() {
        let server = FrameRules::new(Role::Server)
            .deflate(true)
            .max_frame_size(10)
            .max_message_size(20);
        let check = |h: FrameHeader, state| server.check(&h, state).unwrap_err();
        let msg = Some(InProgress {
            compressed: false,
            len: 15,
        });
        // RSV2 on a reserved opcode.
        assert_eq!(
            check(header(true, 0b010, 0x3, true, 0), None),
            ProtocolError::ReservedBitsSet(0b010)
        );
        // RSV1 and RSV2 on a ping: the reserved bit first, then RFC 7692.
        assert_eq!(
            check(header(true, 0b110, 0x9, true, 0), None),
            ProtocolError::ReservedBitsSet(0b110)
        );
        // Compressed, unmasked ping: masking first.
        assert_eq!(
            check(header(true, 0b100, 0x9, false, 0), None),
            ProtocolError::UnmaskedClientFrame
        );
        assert_eq!(
            check(header(true, 0b100, 0x9, true, 0), None),
            ProtocolError::CompressedControlFrame
        );
        assert_eq!(
            check(header(true, 0b100, 0x0, true, 0), None),
            ProtocolError::CompressedContinuation
        );
        // Too big and out of order: the frame size first.
        assert_eq!(
            check(header(true, 0, 0x0, true, 11), None),
            ProtocolError::FrameTooBig { len: 11, max: 10 }
        );
        assert_eq!(
            check(header(true, 0, 0x1, true, 1), msg),
            ProtocolError::ExpectedContinuation
        );
        assert_eq!(
            check(header(true, 0, 0x0, true, 6), msg),
            ProtocolError::MessageTooBig { len: 21, max: 20 }
        );
        // A control frame is held to 125 bytes, not to the frame limit.
        assert_eq!(
            server.check(&header(true, 0, 0x9, true, 100), msg),
            Ok(FrameClass::Control)
        );
        // A compressed message is not held to the message limit here.
        let compressed = Some(InProgress {
            compressed: true,
            len: 15,
        });
        assert_eq!(
            server.check(&header(true, 0, 0x0, true, 6), compressed),
            Ok(FrameClass::Continuation)
        );
    }

    /// RSV1 allowed by `allowed_rsv` without permessage-deflate is an extension's bit
    /// like any other: not "compressed", so allowed on control frames too.
    #[test]
    fn rsv1_of_another_extension_is_not_compression() {
        let rules = FrameRules::new(Role::Client).allowed_rsv(0b100);
        assert_eq!(
            rules.check(&header(true, 0b100, 0x9, false, 0), None),
            Ok(FrameClass::Control)
        );
        assert_eq!(
            rules.check(&header(true, 0b100, 0x1, false, 0), None),
            Ok(FrameClass::Start {
                text: true,
                compressed: false
            })
        );
    }

    #[test]
    fn the_header_check_is_the_context_free_part() {
        for receiver in [Role::Client, Role::Server] {
            for opcode in 0..16 {
                for rsv in 0..8 {
                    for fin in [false, true] {
                        for masked in [false, true] {
                            for len in [0, 125, 126, 1 << 40] {
                                let h = header(fin, rsv, opcode, masked, len);
                                let first = FrameRules::new(receiver)
                                    .allowed_rsv(0b001)
                                    .violations(&h, None)
                                    .find(|e| {
                                        !matches!(
                                            e,
                                            ProtocolError::UnexpectedContinuation
                                                | ProtocolError::ExpectedContinuation
                                        )
                                    });
                                assert_eq!(h.check(receiver, 0b001).err(), first, "{h:?}");
                            }
                        }
                    }
                }
            }
        }
    }
}
