//! What a connection hands out and takes: owned events, lent messages, and the two
//! kinds of data message.

use crate::close::CloseFrame;
use crate::frame::OpCode;

/// What the peer sent: a whole message, a control frame, or its Close.
///
/// ```
/// use rfc6455::{CloseCode, CloseFrame, Connection, Event, Role};
///
/// let mut client = Connection::new(Role::Client);
/// // A server's ping "hi" (RFC 6455 §5.5.2), then its Close with 1000 (§5.5.1).
/// client.receive(&[0x89, 0x02, b'h', b'i', 0x88, 0x02, 0x03, 0xe8]);
/// assert_eq!(client.next_event(), Ok(Some(Event::Ping(b"hi".to_vec()))));
/// let normal = CloseFrame { code: CloseCode::NORMAL, reason: String::new() };
/// assert_eq!(client.next_event(), Ok(Some(Event::Close(Some(normal)))));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A complete text message, valid UTF-8.
    Text(String),
    /// A complete binary message.
    Binary(Vec<u8>),
    /// A ping (already answered when [`Config::auto_pong`](crate::Config::auto_pong) is on).
    Ping(Vec<u8>),
    /// A pong, solicited or not (RFC 6455 §5.5.3).
    Pong(Vec<u8>),
    /// The peer's Close frame: `None` when it carried no status code. The reply is
    /// already queued when the peer closed first.
    Close(Option<CloseFrame>),
}

/// What the peer sent, lent by [`Connection::next_message`](crate::Connection::next_message): the borrowed twin of
/// [`Event`], valid until the connection is next used. Text is valid UTF-8.
///
/// ```
/// use rfc6455::{Connection, Event, MessageRef, Role};
///
/// let mut client = Connection::new(Role::Client);
/// client.receive(&[0x82, 0x03, 1, 2, 3]); // a server's binary message
/// let message = client.next_message().unwrap().unwrap();
/// assert_eq!(message, MessageRef::Binary(&[1, 2, 3]));
/// assert_eq!(Event::from(message), Event::Binary(vec![1, 2, 3])); // to keep it
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MessageRef<'a> {
    /// A complete text message.
    Text(&'a str),
    /// A complete binary message.
    Binary(&'a [u8]),
    /// A ping (already answered when [`Config::auto_pong`](crate::Config::auto_pong) is on).
    Ping(&'a [u8]),
    /// A pong.
    Pong(&'a [u8]),
    /// The peer's Close frame, as in [`Event::Close`].
    Close(Option<CloseFrame>),
}

impl From<MessageRef<'_>> for Event {
    fn from(message: MessageRef<'_>) -> Event {
        match message {
            MessageRef::Text(text) => Event::Text(text.to_owned()),
            MessageRef::Binary(data) => Event::Binary(data.to_vec()),
            MessageRef::Ping(data) => Event::Ping(data.to_vec()),
            MessageRef::Pong(data) => Event::Pong(data.to_vec()),
            MessageRef::Close(frame) => Event::Close(frame),
        }
    }
}

/// The kind of a data message.
///
/// ```
/// use rfc6455::{Connection, MessageKind, Role};
///
/// // The kind picks the opcode of the first frame: 0x1 text, 0x2 binary (RFC 6455 §5.6).
/// let mut server = Connection::new(Role::Server);
/// server.send_message(MessageKind::Text, b"a").unwrap();
/// server.send_message(MessageKind::Binary, b"a").unwrap();
/// assert_eq!(server.pending_output(), [0x81, 0x01, b'a', 0x82, 0x01, b'a']);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MessageKind {
    /// UTF-8 text (opcode 0x1).
    Text,
    /// Binary data (opcode 0x2).
    Binary,
}

impl MessageKind {
    pub(crate) fn opcode(self) -> OpCode {
        match self {
            MessageKind::Text => OpCode::Text,
            MessageKind::Binary => OpCode::Binary,
        }
    }
}
