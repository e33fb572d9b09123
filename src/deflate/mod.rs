//! permessage-deflate (RFC 7692): messages compressed with DEFLATE (RFC 1951), marked
//! by RSV1 on their first frame.
//!
//! - [`DeflateConfig`]: what this end asks for and accepts.
//! - [`DeflateParams`]: the four parameters of one offer or answer (RFC 7692 §7.1),
//!   read from an [`Extension`] and written back.
//! - [`negotiate`] (server) picks the first acceptable offer and builds the answer;
//!   [`offer`] and [`accept_response`] are the client's side.
//! - [`Negotiated`]: the outcome, from this end's point of view, which the
//!   [`Connection`](crate::Connection) uses to compress and inflate.
//!
//! A server that answers `server_no_context_takeover` compresses every message on its
//! own, so the compressed bytes of a message are the same for every connection with
//! the same window: a broadcast can be compressed once. And a connection whose peer
//! does not take over context (`client_no_context_takeover`) needs no inflate state
//! between messages. [`DeflateConfig::default`] asks for both, so that an idle
//! connection costs no compression memory.
//!
//! ```
//! use rfc6455::deflate::{negotiate, DeflateConfig};
//! use rfc6455::extensions::parse;
//!
//! // What Chromium offers.
//! let offers = parse(&["permessage-deflate; client_max_window_bits"]);
//! let (negotiated, answer) = negotiate(&DeflateConfig::default(), &offers).unwrap();
//! assert_eq!(answer, "permessage-deflate; server_no_context_takeover; client_no_context_takeover");
//! assert!(negotiated.local_no_context_takeover && negotiated.remote_no_context_takeover);
//! ```

pub(crate) mod codec;

use crate::extensions::{Extension, SyntaxError};
use std::fmt;

/// The extension token (RFC 7692 §7).
pub const PERMESSAGE_DEFLATE: &str = "permessage-deflate";

/// How this end uses permessage-deflate.
///
/// ```
/// use rfc6455::deflate::DeflateConfig;
///
/// let config = DeflateConfig { threshold: 0, ..DeflateConfig::default() };
/// assert_eq!(config.max_window_bits, 15);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeflateConfig {
    /// DEFLATE level, 0 (store) to 9 (smallest). Default 6, zlib's default.
    pub level: u32,
    /// Messages shorter than this go uncompressed (RFC 7692 lets every message choose:
    /// RSV1 clear). Below about 64 bytes DEFLATE saves nothing on typical JSON and
    /// costs a compressor call. Default 64.
    pub threshold: usize,
    /// The LZ77 window this end compresses with, 9 to 15 (zlib cannot compress with
    /// the window of 8 the RFC allows). Default 15.
    pub max_window_bits: u8,
    /// This end starts every message with an empty window, so that its compressor
    /// holds nothing between messages (a server announces `server_no_context_takeover`,
    /// a client offers `client_no_context_takeover`). Default on.
    pub no_context_takeover: bool,
    /// Ask the peer to do the same, so that this end keeps no inflate state between
    /// messages (a server answers `client_no_context_takeover`, RFC 7692 §7.1.1.2; a
    /// client offers `server_no_context_takeover`). Default on.
    pub request_no_context_takeover: bool,
    /// Ask the peer to compress with at most this window: a client offers
    /// `server_max_window_bits`; a server answers `client_max_window_bits` when the
    /// offer allows it. Default `None`.
    pub request_max_window_bits: Option<u8>,
}

impl Default for DeflateConfig {
    fn default() -> Self {
        DeflateConfig {
            level: 6,
            threshold: 64,
            max_window_bits: 15,
            no_context_takeover: true,
            request_no_context_takeover: true,
            request_max_window_bits: None,
        }
    }
}

/// The outcome of the negotiation, from this end's point of view.
///
/// Its `Default` is what a bare `permessage-deflate` offer and answer agree: context
/// taken over both ways, windows of 15 bits, level 6, threshold 64.
///
/// ```
/// use rfc6455::deflate::Negotiated;
///
/// let agreed = Negotiated { threshold: 0, ..Negotiated::default() };
/// assert!(!agreed.local_no_context_takeover && !agreed.remote_no_context_takeover);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Negotiated {
    /// This end resets its compressor after every message.
    pub local_no_context_takeover: bool,
    /// The peer resets its compressor after every message: this end may drop its
    /// inflate state between messages.
    pub remote_no_context_takeover: bool,
    /// The largest window this end may compress with (8 to 15; with 8 this end sends
    /// messages uncompressed, see [`DeflateConfig::max_window_bits`]).
    pub local_max_window_bits: u8,
    /// The largest window the peer compresses with.
    pub remote_max_window_bits: u8,
    /// DEFLATE level and threshold of this end (from its [`DeflateConfig`]).
    pub level: u32,
    /// Messages shorter than this go uncompressed.
    pub threshold: usize,
}

impl Default for Negotiated {
    fn default() -> Self {
        Negotiated {
            local_no_context_takeover: false,
            remote_no_context_takeover: false,
            local_max_window_bits: 15,
            remote_max_window_bits: 15,
            level: 6,
            threshold: DeflateConfig::default().threshold,
        }
    }
}

/// The parameters of one permessage-deflate offer or answer (RFC 7692 §7.1).
///
/// ```
/// use rfc6455::deflate::DeflateParams;
/// use rfc6455::extensions::parse;
///
/// // Chromium's offer (RFC 7692 §7.1).
/// let offer = parse(&["permessage-deflate; client_max_window_bits"]);
/// let params = DeflateParams::from_extension(offer[0].as_ref().unwrap()).unwrap();
/// assert_eq!(params.client_max_window_bits, Some(None)); // the client can take a limit
/// assert!(!params.server_no_context_takeover);
/// assert_eq!(params.to_header(), "permessage-deflate; client_max_window_bits");
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeflateParams {
    /// `server_no_context_takeover` (§7.1.1.1).
    pub server_no_context_takeover: bool,
    /// `client_no_context_takeover` (§7.1.1.2).
    pub client_no_context_takeover: bool,
    /// `server_max_window_bits=N` (§7.1.2.1).
    pub server_max_window_bits: Option<u8>,
    /// `client_max_window_bits[=N]` (§7.1.2.2): `Some(None)` without a value, which
    /// only an offer may send.
    pub client_max_window_bits: Option<Option<u8>>,
}

/// Why an offer or an answer is not a valid permessage-deflate element (RFC 7692 §7.1).
///
/// ```
/// use rfc6455::deflate::{DeflateParams, ParamError};
/// use rfc6455::extensions::parse;
///
/// let read = |s: &str| DeflateParams::from_extension(parse(&[s])[0].as_ref().unwrap());
/// // RFC 7692 §7.1: a repeated parameter, or a value on a flag, makes the offer invalid.
/// let twice = read("permessage-deflate; server_no_context_takeover; server_no_context_takeover");
/// assert_eq!(twice, Err(ParamError::Duplicate("server_no_context_takeover".into())));
/// let valued = read("permessage-deflate; client_no_context_takeover=1");
/// assert_eq!(valued, Err(ParamError::ValueOnFlag("client_no_context_takeover".into())));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ParamError {
    /// The element is not `permessage-deflate`.
    NotDeflate(String),
    /// A parameter RFC 7692 does not define (§7.1: decline).
    Unknown(String),
    /// A parameter given twice (§7.1: decline).
    Duplicate(String),
    /// A value on a parameter that takes none (§7.1.1).
    ValueOnFlag(String),
    /// A window size that is not a decimal 8–15 without leading zeros (§7.1.2), or
    /// missing where one is required.
    InvalidWindowBits(String, Option<String>),
}

impl fmt::Display for ParamError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParamError::NotDeflate(name) => {
                write!(f, "extension {name:?} is not permessage-deflate")
            }
            ParamError::Unknown(name) => write!(f, "unknown parameter {name:?} (RFC 7692 §7.1)"),
            ParamError::Duplicate(name) => {
                write!(f, "parameter {name:?} given twice (RFC 7692 §7.1)")
            }
            ParamError::ValueOnFlag(name) => {
                write!(f, "parameter {name:?} takes no value (RFC 7692 §7.1.1)")
            }
            ParamError::InvalidWindowBits(name, value) => write!(
                f,
                "{name} needs a window size of 8 to 15, got {value:?} (RFC 7692 §7.1.2)"
            ),
        }
    }
}

impl std::error::Error for ParamError {}

/// `8`..`15`, decimal, no leading zero (RFC 7692 §7.1.2.1).
fn window_bits(name: &str, value: Option<&str>) -> Result<u8, ParamError> {
    let invalid = || ParamError::InvalidWindowBits(name.to_string(), value.map(str::to_string));
    let text = value.ok_or_else(invalid)?;
    if text.starts_with('0') || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(invalid());
    }
    match text.parse::<u8>() {
        Ok(bits @ 8..=15) => Ok(bits),
        _ => Err(invalid()),
    }
}

impl DeflateParams {
    /// Reads one element of `Sec-WebSocket-Extensions`. Names are compared without
    /// regard to case; every rule of RFC 7692 §7.1 on names, values and repeats holds.
    ///
    /// ```
    /// use rfc6455::deflate::{DeflateParams, ParamError};
    /// use rfc6455::extensions::parse;
    ///
    /// let read = |s: &str| DeflateParams::from_extension(parse(&[s])[0].as_ref().unwrap());
    /// let params = read("permessage-deflate; Server_Max_Window_Bits=10; client_max_window_bits").unwrap();
    /// assert_eq!(params.server_max_window_bits, Some(10));
    /// assert_eq!(params.client_max_window_bits, Some(None));
    /// assert!(matches!(read("permessage-deflate; server_max_window_bits=16"), Err(ParamError::InvalidWindowBits(..))));
    /// assert!(matches!(read("permessage-deflate; mystery"), Err(ParamError::Unknown(_))));
    /// ```
    pub fn from_extension(ext: &Extension) -> Result<DeflateParams, ParamError> {
        if !ext.name.eq_ignore_ascii_case(PERMESSAGE_DEFLATE) {
            return Err(ParamError::NotDeflate(ext.name.clone()));
        }
        let mut params = DeflateParams::default();
        let mut seen: Vec<String> = Vec::new();
        for (name, value) in &ext.params {
            let lower = name.to_ascii_lowercase();
            if seen.contains(&lower) {
                return Err(ParamError::Duplicate(name.clone()));
            }
            let flag = |set: &mut bool| match value {
                None => {
                    *set = true;
                    Ok(())
                }
                Some(_) => Err(ParamError::ValueOnFlag(name.clone())),
            };
            match lower.as_str() {
                "server_no_context_takeover" => flag(&mut params.server_no_context_takeover)?,
                "client_no_context_takeover" => flag(&mut params.client_no_context_takeover)?,
                "server_max_window_bits" => {
                    params.server_max_window_bits = Some(window_bits(&lower, value.as_deref())?);
                }
                "client_max_window_bits" => {
                    params.client_max_window_bits = Some(match value {
                        None => None,
                        Some(v) => Some(window_bits(&lower, Some(v))?),
                    });
                }
                _ => return Err(ParamError::Unknown(name.clone())),
            }
            seen.push(lower);
        }
        Ok(params)
    }

    /// The element as sent in `Sec-WebSocket-Extensions`.
    ///
    /// ```
    /// use rfc6455::deflate::DeflateParams;
    ///
    /// let params = DeflateParams { client_max_window_bits: Some(None), server_max_window_bits: Some(12), ..Default::default() };
    /// assert_eq!(params.to_header(), "permessage-deflate; server_max_window_bits=12; client_max_window_bits");
    /// ```
    pub fn to_header(&self) -> String {
        let mut out = String::from(PERMESSAGE_DEFLATE);
        if self.server_no_context_takeover {
            out.push_str("; server_no_context_takeover");
        }
        if self.client_no_context_takeover {
            out.push_str("; client_no_context_takeover");
        }
        if let Some(bits) = self.server_max_window_bits {
            out.push_str(&format!("; server_max_window_bits={bits}"));
        }
        match self.client_max_window_bits {
            Some(Some(bits)) => out.push_str(&format!("; client_max_window_bits={bits}")),
            Some(None) => out.push_str("; client_max_window_bits"),
            None => {}
        }
        out
    }
}

/// The server's side (RFC 7692 §5, §7.1): the first `permessage-deflate` offer that is
/// valid is accepted; invalid ones (unknown or repeated parameters, bad window sizes,
/// values on flags, bad syntax) are declined and the next is tried. Returns what was
/// agreed and the `Sec-WebSocket-Extensions` value to answer with, or `None` (no
/// compression; the connection goes on without it).
///
/// ```
/// use rfc6455::deflate::{negotiate, DeflateConfig};
/// use rfc6455::extensions::parse;
///
/// // The first offer is invalid (a window of 16, RFC 7692 §7.1.2): declined, the next accepted.
/// let offers = parse(&["permessage-deflate; server_max_window_bits=16, permessage-deflate; server_max_window_bits=10"]);
/// let (agreed, answer) = negotiate(&DeflateConfig::default(), &offers).unwrap();
/// assert_eq!(agreed.local_max_window_bits, 10); // the server compresses within the limit
/// assert!(answer.ends_with("server_max_window_bits=10"));
/// // Nothing acceptable: no compression, and the handshake goes on.
/// assert_eq!(negotiate(&DeflateConfig::default(), &parse(&["x-webkit-deflate-frame"])), None);
/// ```
pub fn negotiate(
    config: &DeflateConfig,
    offers: &[Result<Extension, SyntaxError>],
) -> Option<(Negotiated, String)> {
    offers
        .iter()
        .filter_map(|offer| offer.as_ref().ok())
        .filter(|ext| ext.name.eq_ignore_ascii_case(PERMESSAGE_DEFLATE))
        .find_map(|ext| answer(config, &DeflateParams::from_extension(ext).ok()?))
}

/// The answer to one valid offer.
fn answer(config: &DeflateConfig, offer: &DeflateParams) -> Option<(Negotiated, String)> {
    let own_bits = config.max_window_bits.clamp(9, 15);
    let mut reply = DeflateParams {
        // §7.1.1.1: accepted when offered, and a server may announce it unasked.
        server_no_context_takeover: offer.server_no_context_takeover || config.no_context_takeover,
        // §7.1.1.2: a server may ask the client not to take over context.
        client_no_context_takeover: offer.client_no_context_takeover
            || config.request_no_context_takeover,
        ..DeflateParams::default()
    };
    // §7.1.2.1: an offered limit on our window is answered with the same or smaller.
    // (A limit of 8 is agreed to, and then this end sends uncompressed messages:
    // zlib compresses with 9 at least.)
    let local_bits = match offer.server_max_window_bits {
        Some(limit) => {
            reply.server_max_window_bits = Some(limit.min(own_bits));
            limit.min(own_bits)
        }
        None => own_bits,
    };
    // §7.1.2.2: the client's window may be limited only if it offered the parameter.
    let remote_bits = match (offer.client_max_window_bits, config.request_max_window_bits) {
        (None, _) => 15,
        (Some(offered), Some(wanted)) => {
            let bits = wanted.clamp(8, offered.unwrap_or(15));
            reply.client_max_window_bits = Some(Some(bits));
            bits
        }
        (Some(Some(offered)), None) => {
            // The client said it would use at most this: hold it to that, so that
            // inflating needs no bigger window.
            reply.client_max_window_bits = Some(Some(offered));
            offered
        }
        (Some(None), None) => 15,
    };
    let negotiated = Negotiated {
        local_no_context_takeover: reply.server_no_context_takeover,
        remote_no_context_takeover: reply.client_no_context_takeover,
        local_max_window_bits: local_bits,
        remote_max_window_bits: remote_bits,
        level: config.level,
        threshold: config.threshold,
    };
    Some((negotiated, reply.to_header()))
}

/// The client's offer (RFC 7692 §5.1): one `permessage-deflate` element. It always
/// includes `client_max_window_bits`, which says this client can honour a limit.
///
/// ```
/// use rfc6455::deflate::{offer, DeflateConfig};
///
/// assert_eq!(
///     offer(&DeflateConfig::default()),
///     "permessage-deflate; server_no_context_takeover; client_no_context_takeover; client_max_window_bits"
/// );
/// ```
pub fn offer(config: &DeflateConfig) -> String {
    DeflateParams {
        server_no_context_takeover: config.request_no_context_takeover,
        client_no_context_takeover: config.no_context_takeover,
        server_max_window_bits: config.request_max_window_bits,
        client_max_window_bits: Some(
            (config.max_window_bits < 15).then_some(config.max_window_bits),
        ),
    }
    .to_header()
}

/// Why a server's `Sec-WebSocket-Extensions` answer fails the client's handshake
/// (RFC 6455 §4.1: "_Fail the WebSocket Connection_"; RFC 7692 §5.1, §7.1).
///
/// ```
/// use rfc6455::deflate::{accept_response, AnswerError, DeflateConfig};
/// use rfc6455::extensions::parse;
///
/// let config = DeflateConfig::default();
/// // An extension the client never offered fails the handshake (RFC 6455 §9.1).
/// let answer = parse(&["x-other"]);
/// assert_eq!(accept_response(&config, &answer), Err(AnswerError::NotOffered("x-other".into())));
/// // The client offered server_no_context_takeover; the answer must carry it (RFC 7692 §7.1.1.1).
/// let answer = parse(&["permessage-deflate; client_no_context_takeover"]);
/// assert!(matches!(accept_response(&config, &answer), Err(AnswerError::Mismatch(_))));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum AnswerError {
    /// The header cannot be read.
    Syntax(SyntaxError),
    /// An extension the client did not offer.
    NotOffered(String),
    /// permessage-deflate accepted twice.
    Repeated,
    /// A parameter that breaks RFC 7692 §7.1.
    Param(ParamError),
    /// A parameter this client did not offer and a server may not add
    /// (`client_max_window_bits` is only answered to an offer that has it), or one that
    /// does not honour the offer (a larger `server_max_window_bits`, or a missing one).
    Mismatch(String),
}

impl fmt::Display for AnswerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AnswerError::Syntax(e) => e.fmt(f),
            AnswerError::NotOffered(name) => write!(f, "extension {name:?} was not offered"),
            AnswerError::Repeated => f.write_str("permessage-deflate answered twice"),
            AnswerError::Param(e) => e.fmt(f),
            AnswerError::Mismatch(why) => write!(f, "{why} (RFC 7692 §7.1)"),
        }
    }
}

impl std::error::Error for AnswerError {}

/// The client's check of the server's answer to [`offer`]: `Ok(None)` when the server
/// declined (no `permessage-deflate` in the answer), `Ok(Some(..))` with what was
/// agreed, or why the answer fails the handshake.
///
/// ```
/// use rfc6455::deflate::{accept_response, DeflateConfig};
/// use rfc6455::extensions::parse;
///
/// let config = DeflateConfig::default();
/// let agreed = accept_response(&config, &parse(&["permessage-deflate; server_no_context_takeover; client_max_window_bits=10"]))
///     .unwrap()
///     .unwrap();
/// assert_eq!(agreed.local_max_window_bits, 10);
/// assert!(accept_response(&config, &parse(&["x-other"])).is_err());
/// ```
pub fn accept_response(
    config: &DeflateConfig,
    answer: &[Result<Extension, SyntaxError>],
) -> Result<Option<Negotiated>, AnswerError> {
    let mut agreed = None;
    for element in answer {
        let ext = element
            .as_ref()
            .map_err(|e| AnswerError::Syntax(e.clone()))?;
        if !ext.name.eq_ignore_ascii_case(PERMESSAGE_DEFLATE) {
            return Err(AnswerError::NotOffered(ext.name.clone()));
        }
        if agreed.is_some() {
            return Err(AnswerError::Repeated);
        }
        let params = DeflateParams::from_extension(ext).map_err(AnswerError::Param)?;
        agreed = Some(check_answer(config, &params)?);
    }
    Ok(agreed)
}

fn check_answer(config: &DeflateConfig, params: &DeflateParams) -> Result<Negotiated, AnswerError> {
    if config.request_no_context_takeover && !params.server_no_context_takeover {
        return Err(AnswerError::Mismatch(
            "server_no_context_takeover was offered but not answered".into(),
        ));
    }
    let remote_bits = match (
        config.request_max_window_bits,
        params.server_max_window_bits,
    ) {
        (Some(asked), Some(bits)) if bits > asked => {
            return Err(AnswerError::Mismatch(format!(
                "server_max_window_bits={bits} is over the {asked} offered"
            )))
        }
        (Some(asked), None) => {
            return Err(AnswerError::Mismatch(format!(
                "server_max_window_bits={asked} was offered but not answered"
            )))
        }
        (_, Some(bits)) => bits,
        (None, None) => 15,
    };
    let local_bits = match params.client_max_window_bits {
        Some(Some(bits)) => bits,
        Some(None) => {
            return Err(AnswerError::Param(ParamError::InvalidWindowBits(
                "client_max_window_bits".into(),
                None,
            )))
        }
        None => config.max_window_bits.clamp(9, 15),
    };
    Ok(Negotiated {
        local_no_context_takeover: params.client_no_context_takeover || config.no_context_takeover,
        remote_no_context_takeover: params.server_no_context_takeover,
        local_max_window_bits: local_bits.min(config.max_window_bits.clamp(9, 15)),
        remote_max_window_bits: remote_bits,
        level: config.level,
        threshold: config.threshold,
    })
}
