//! The rooms server's budgets (what one client, and all of them together, may make
//! the node hold or do) and the checks of names, rooms and texts.
//!
//! The event loop bounds each connection (`ServerConfig`: output, rate, timeouts);
//! these bound what the chat keeps on a connection's behalf: rooms per member and
//! per node, history bytes in memory, how much one join or stream replays, how often
//! one address may publish over HTTP or open a stream.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// The most bytes of a message's text, counted as stored: escaped as JSON (`\u0001`
/// is 6 bytes), so that the limit bounds memory, not characters.
pub const MAX_TEXT: usize = 4096;
/// The most characters of a name and of a room.
pub const MAX_NAME: usize = 32;
pub const MAX_ROOM: usize = 64;
/// The largest request the server reads (a WebSocket message; beyond it 1009): a
/// message of `MAX_TEXT` stored bytes may come with every character escaped
/// (`\u0061`, 6 bytes for 1), plus its room and fields. Nothing valid is larger.
pub const MAX_REQUEST: usize = 32 * 1024;
/// A member's `typing` reaches the others at most this often per room.
pub const TYPING_INTERVAL: Duration = Duration::from_secs(2);

/// Budgets of `rfc6455 serve` (flags; defaults in the README's "Limits and
/// defences" table).
#[derive(clap::Args, Debug, Clone)]
pub struct ChatLimits {
    /// Rooms one connection may be in at once (beyond: error `too_many_rooms`).
    #[arg(long, value_name = "N", default_value_t = 100)]
    pub max_rooms_per_member: usize,
    /// Rooms this node keeps (with members here, or a history in memory); a join of
    /// a new room beyond gets `too_many_rooms`, and the least recently used empty
    /// rooms' histories are forgotten.
    #[arg(long, value_name = "N", default_value_t = 10_000)]
    pub max_rooms: usize,
    /// Bytes of history kept in memory for all rooms together (without --redis);
    /// beyond, the least recently used rooms' histories are dropped whole.
    #[arg(long, value_name = "BYTES", default_value_t = 64 << 20)]
    pub history_budget: usize,
    /// Bytes one join or event stream replays; past them the replay stops and says
    /// where (`more: true`, page on with `since`).
    #[arg(long, value_name = "BYTES", default_value_t = 256 * 1024)]
    pub max_replay: usize,
    /// HTTP publishes and event-stream opens per second from one IP address (a
    /// burst of twice as many); beyond: 429 with Retry-After. 0: no limit.
    #[arg(long, value_name = "N", default_value_t = 20)]
    pub http_rate: u32,
    /// Connections one user (a token's `sub`) may have open on this node; beyond,
    /// the upgrade is refused with 429.
    #[arg(long, value_name = "N", default_value_t = 16)]
    pub max_user_connections: usize,
    /// Users one room may have; a join beyond gets `room_full`. Default: no limit.
    #[arg(long, value_name = "N")]
    pub room_capacity: Option<usize>,
    /// Messages older than this are not replayed (history is bounded by count,
    /// `--history`, and by age). Default: no limit.
    #[arg(long, value_name = "SECONDS")]
    pub history_ttl: Option<u64>,
    /// How long an idempotency key is remembered: a message sent again with the
    /// same key (same user, same room) within it gets the first answer and is not
    /// delivered again.
    #[arg(long, value_name = "SECONDS", default_value_t = 300)]
    pub dedup_window: u64,
}

impl ChatLimits {
    pub fn history_ttl(&self) -> Option<Duration> {
        self.history_ttl.map(Duration::from_secs)
    }

    pub fn dedup_window(&self) -> Duration {
        Duration::from_secs(self.dedup_window)
    }
}

/// A signed user's id as a request names it (`direct`'s `to`): what a token's `sub`
/// may be, 1 to `identity::MAX_USER` characters, none a control character.
pub fn user_id(field: &str, value: &str) -> Result<String, Refused> {
    let chars = value.chars().count();
    if chars == 0 || value.chars().any(char::is_control) {
        return Err((
            "bad_field",
            format!("{field:?}: a user id, no control characters"),
        ));
    }
    // The bound of a token's `sub`, written once (identity.rs).
    let most = super::identity::MAX_USER;
    if chars > most {
        return Err(("too_long", format!("{field:?}: at most {most} characters")));
    }
    Ok(value.to_string())
}

/// The most characters of an idempotency key.
pub const MAX_IDEMPOTENCY_KEY: usize = 64;

/// An idempotency key: 1 to 64 visible ASCII characters (a UUID fits; it goes into
/// Redis keys and logs nowhere).
pub fn idempotency_key(key: &str) -> Result<&str, String> {
    let visible = key.bytes().all(|b| b.is_ascii_graphic());
    if key.is_empty() || key.len() > MAX_IDEMPOTENCY_KEY || !visible {
        return Err(format!(
            "an idempotency key is 1 to {MAX_IDEMPOTENCY_KEY} visible ASCII characters"
        ));
    }
    Ok(key)
}

impl Default for ChatLimits {
    fn default() -> Self {
        ChatLimits {
            max_rooms_per_member: 100,
            max_rooms: 10_000,
            history_budget: 64 << 20,
            max_replay: 256 * 1024,
            http_rate: 20,
            max_user_connections: 16,
            room_capacity: None,
            history_ttl: None,
            dedup_window: 300,
        }
    }
}

/// A token bucket per address: `rate` a second, a burst of twice that.
#[derive(Debug)]
pub struct PeerRates {
    rate: f64,
    buckets: HashMap<IpAddr, (f64, Instant)>,
}

/// Addresses remembered before full buckets are forgotten.
const MAX_TRACKED: usize = 10_000;

impl PeerRates {
    pub fn new(rate: u32) -> Self {
        PeerRates {
            rate: f64::from(rate),
            buckets: HashMap::new(),
        }
    }

    /// Takes a token for `peer`, or says how long until one is there.
    pub fn take(&mut self, peer: IpAddr, now: Instant) -> Result<(), Duration> {
        if self.rate <= 0.0 {
            return Ok(());
        }
        let burst = self.rate * 2.0;
        if self.buckets.len() >= MAX_TRACKED && !self.buckets.contains_key(&peer) {
            let rate = self.rate;
            self.buckets.retain(|_, (tokens, at)| {
                *tokens + now.duration_since(*at).as_secs_f64() * rate < burst
            });
        }
        let (tokens, at) = self.buckets.entry(peer).or_insert((burst, now));
        *tokens = (*tokens + now.duration_since(*at).as_secs_f64() * self.rate).min(burst);
        *at = now;
        if *tokens < 1.0 {
            return Err(Duration::from_secs_f64((1.0 - *tokens) / self.rate));
        }
        *tokens -= 1.0;
        Ok(())
    }
}

/// Why a name, room or text is refused: (error code, message).
pub type Refused = (&'static str, String);

/// A character that does not show, or changes how others show: controls, and the
/// format characters used to make one name look like another (zero-width ones,
/// bidirectional overrides, the BOM, the soft hyphen, invisible operators).
fn is_invisible(c: char) -> bool {
    c.is_control()
        || matches!(c,
            '\u{00AD}' | '\u{061C}' | '\u{180E}' | '\u{200B}'..='\u{200F}'
            | '\u{202A}'..='\u{202E}' | '\u{2060}'..='\u{206F}' | '\u{FEFF}'
            | '\u{FFF9}'..='\u{FFFB}' | '\u{E0000}'..='\u{E007F}')
}

/// A user's name: 1 to `MAX_NAME` characters, none invisible, in Unicode NFC (so that
/// "é" typed two ways is one name).
pub fn name(field: &str, value: &str) -> Result<String, Refused> {
    let value = icu_normalizer::ComposingNormalizerBorrowed::new_nfc()
        .normalize(value)
        .into_owned();
    label(field, &value, MAX_NAME)?;
    Ok(value)
}

/// A room's name: 1 to `MAX_ROOM` characters, none invisible.
pub fn room(field: &str, value: &str) -> Result<String, Refused> {
    label(field, value, MAX_ROOM)?;
    Ok(value.to_string())
}

fn label(field: &str, value: &str, max: usize) -> Result<(), Refused> {
    if value.is_empty() {
        return Err(("bad_field", format!("empty \"{field}\"")));
    }
    if value.chars().count() > max {
        return Err(("too_long", format!("\"{field}\" is over {max} characters")));
    }
    if value.chars().any(is_invisible) {
        return Err((
            "bad_field",
            format!("\"{field}\" has a control or invisible character"),
        ));
    }
    Ok(())
}

/// A message's text: not empty, at most `MAX_TEXT` bytes as stored (JSON-escaped).
pub fn text(field: &str, value: &str) -> Result<String, Refused> {
    if value.is_empty() {
        return Err(("bad_field", format!("empty \"{field}\"")));
    }
    // Escaped, as it will be stored and sent; the quotes are not counted.
    let stored = serde_json::to_string(value).map_or(usize::MAX, |s| s.len() - 2);
    if stored > MAX_TEXT {
        return Err((
            "too_long",
            format!("\"{field}\" is over {MAX_TEXT} bytes as JSON ({stored})"),
        ));
    }
    Ok(value.to_string())
}

/// Compares two secrets in time that depends on their lengths only.
pub fn same_secret(given: &str, expected: &str) -> bool {
    use subtle::ConstantTimeEq;
    given.len() == expected.len() && bool::from(given.as_bytes().ct_eq(expected.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invisible_and_control_characters_are_refused_in_names_and_rooms() {
        for bad in [
            "a\u{200B}b",
            "a\u{202E}b",
            "a\u{0}b",
            "\u{FEFF}x",
            "a\u{2066}",
        ] {
            assert_eq!(name("name", bad).unwrap_err().0, "bad_field", "{bad:?}");
            assert_eq!(room("room", bad).unwrap_err().0, "bad_field", "{bad:?}");
        }
        assert_eq!(
            name("name", "caf\u{65}\u{301}").unwrap(),
            "caf\u{e9}",
            "NFC"
        );
        assert_eq!(room("room", "constructor").unwrap(), "constructor");
        assert_eq!(name("name", &"x".repeat(33)).unwrap_err().0, "too_long");
    }

    #[test]
    fn text_is_limited_in_stored_bytes() {
        assert!(text("text", &"a".repeat(MAX_TEXT)).is_ok());
        // U+0001 is stored as `\u0001`: 6 bytes each.
        let controls = "\u{1}".repeat(MAX_TEXT / 6 + 1);
        assert_eq!(text("text", &controls).unwrap_err().0, "too_long");
        assert_eq!(text("text", "").unwrap_err().0, "bad_field");
    }

    #[test]
    fn the_largest_valid_request_fits_in_max_request() {
        // Every character escaped by the client: `\u0061` for "a".
        let text = "\\u0061".repeat(MAX_TEXT);
        let room = "\\u0062".repeat(MAX_ROOM);
        let request = format!(
            r#"{{"type":"message","room":"{room}","text":"{text}","id":12345678901234567890}}"#
        );
        assert!(request.len() < MAX_REQUEST, "{}", request.len());
    }

    #[test]
    fn peer_rates_allow_a_burst_then_the_rate() {
        let mut rates = PeerRates::new(10);
        let peer: IpAddr = "127.0.0.1".parse().unwrap();
        let other: IpAddr = "127.0.0.2".parse().unwrap();
        let now = Instant::now();
        for _ in 0..20 {
            assert!(rates.take(peer, now).is_ok());
        }
        let wait = rates.take(peer, now).unwrap_err();
        assert!(
            wait > Duration::ZERO && wait <= Duration::from_millis(100),
            "{wait:?}"
        );
        assert!(rates.take(other, now).is_ok(), "per address");
        assert!(rates.take(peer, now + Duration::from_millis(100)).is_ok());
    }

    #[test]
    fn secrets_compare_equal_only_when_equal() {
        assert!(same_secret("s3cret", "s3cret"));
        assert!(!same_secret("s3cres", "s3cret"));
        assert!(!same_secret("s3cre", "s3cret"));
    }
}
