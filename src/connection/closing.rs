//! The closing handshake (RFC 6455 §7.1.2–§7.1.4) as one enum that carries its data:
//! whether a Close went out and whether the connection is closed cannot disagree.

use super::timers::Deadline;

/// Where the closing handshake stands (RFC 6455 §7).
///
/// ```
/// use rfc6455::{CloseCode, Connection, Event, Role, State};
///
/// let mut server = Connection::new(Role::Server);
/// assert_eq!(server.state(), State::Open);
/// server.close(CloseCode::GOING_AWAY, "").unwrap();
/// assert_eq!(server.state(), State::Closing); // ours sent, the peer's awaited
/// // The client's Close, masked with a zero key, ends the handshake (RFC 6455 §7.1.2).
/// server.receive(&[0x88, 0x82, 0, 0, 0, 0, 0x03, 0xe9]);
/// assert!(matches!(server.next_event(), Ok(Some(Event::Close(Some(_))))));
/// assert_eq!(server.state(), State::Closed);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Messages flow both ways.
    Open,
    /// This end sent a Close and waits for the peer's; it still receives.
    Closing,
    /// Both Close frames are exchanged, or the connection failed. Once the pending
    /// output is written, a server closes the TCP connection; a client waits for the
    /// server to close it (RFC 6455 §7.1.1).
    Closed,
}

/// Where the closing handshake stands, with what each stage needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Closing {
    /// No Close sent or received: messages flow both ways.
    Open,
    /// This end's Close is queued and the peer's awaited — while it still reads —
    /// until the close timeout.
    Sent { timeout: Deadline },
    /// Both Close frames exchanged, the connection failed, or the peer's Close did not
    /// come in time: nothing more is read or sent.
    Closed,
}

impl Closing {
    /// The public view: where it stands, without the data.
    pub(super) fn state(self) -> State {
        match self {
            Closing::Open => State::Open,
            Closing::Sent { .. } => State::Closing,
            Closing::Closed => State::Closed,
        }
    }

    /// True until this end has sent its Close: only then may anything but the
    /// closing handshake be sent (RFC 6455 §5.5.1).
    pub(super) fn may_send(self) -> bool {
        self == Closing::Open
    }

    pub(super) fn is_closed(self) -> bool {
        self == Closing::Closed
    }
}
