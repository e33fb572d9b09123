//! The closing handshake (RFC 6455 §7.1.2–§7.1.4) as one enum that carries its data:
//! whether a Close went out and whether the connection is closed cannot disagree.

use super::timers::Deadline;
use crate::State;

/// Where the closing handshake stands.
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
    /// The public view.
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
