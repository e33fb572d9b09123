//! A message from a client as a handler gets it: lent, or owned to keep.

/// A complete message from a client, owned: what [`Received::to_message`] makes of a
/// lent one, for a handler that keeps it beyond the call.
///
/// ```
/// # use rfc6455::server::{ConnId, Ctx, Handler, Message, Received, Refusal};
/// # use rfc6455::Event;
/// # use rfc6455::server::{Accept, Server, ServerConfig};
/// /// Keeps every message: owned, it may outlive the call.
/// struct Log(Vec<Message>);
/// impl Handler for Log {
/// #   type Data = ();
/// #   fn upgrade(&mut self, _: &rfc6455::handshake::server::Request) -> Result<Accept<()>, Refusal> {
/// #       Ok(Accept::new(()))
/// #   }
///     fn message(&mut self, ctx: &mut Ctx<'_, ()>, id: ConnId, message: Received<'_>) {
///         self.0.push(message.to_message());
///         let answer = match self.0.last() { // RFC 6455 §5.6: text or binary data
///             Some(Message::Text(text)) => format!("text, {} chars", text.chars().count()),
///             Some(Message::Binary(data)) => format!("binary, {} bytes", data.len()),
///             None => unreachable!("pushed above"),
///         };
///         ctx.send_text(id, &answer);
///     }
/// }
/// # let server = Server::bind("127.0.0.1:0".parse().unwrap(), ServerConfig::default())?;
/// # let (addr, handle) = (server.local_addr()?, server.handle());
/// # let url = format!("ws://{addr}/");
/// # let server_thread = std::thread::spawn(move || server.run(Log(Vec::new())));
/// let mut ws = rfc6455::blocking::connect(&url)?;
/// ws.send_text("héllo")?;
/// assert_eq!(ws.read()?, Event::Text("text, 5 chars".into()));
/// ws.send_binary(&[1, 2])?;
/// assert_eq!(ws.read()?, Event::Text("binary, 2 bytes".into()));
/// # drop(ws);
/// # handle.shutdown();
/// # server_thread.join().unwrap()?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// A text message.
    Text(String),
    /// A binary message.
    Binary(Vec<u8>),
}

/// A complete message from a client, lent to [`Handler::message`](super::Handler::message) for the length of
/// the call: the loop reads every message into one reused buffer, so a handler that
/// looks at a message and answers it allocates nothing per message.
/// [`to_message`](Self::to_message) makes an owned copy to keep.
///
/// ```
/// use rfc6455::server::{Message, Received};
///
/// let lent = Received::Text("hi");
/// assert_eq!(lent.as_bytes(), b"hi");
/// assert_eq!(lent.to_message(), Message::Text("hi".into())); // to keep it
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Received<'a> {
    /// A text message.
    Text(&'a str),
    /// A binary message.
    Binary(&'a [u8]),
}

impl Received<'_> {
    /// The payload's bytes.
    ///
    /// ```
    /// use rfc6455::server::Received;
    ///
    /// // Text is UTF-8 on the wire (RFC 6455 §5.6): é takes two bytes.
    /// assert_eq!(Received::Text("é").as_bytes(), [0xc3, 0xa9]);
    /// assert_eq!(Received::Binary(&[1, 2]).as_bytes(), [1, 2]);
    /// ```
    pub fn as_bytes(&self) -> &[u8] {
        match self {
            Received::Text(text) => text.as_bytes(),
            Received::Binary(data) => data,
        }
    }

    /// An owned copy, to keep beyond the call.
    ///
    /// ```
    /// use rfc6455::server::{Message, Received};
    ///
    /// let kept: Vec<Message> = [Received::Text("a"), Received::Binary(&[1])]
    ///     .iter()
    ///     .map(Received::to_message)
    ///     .collect();
    /// assert_eq!(kept, [Message::Text("a".into()), Message::Binary(vec![1])]);
    /// ```
    pub fn to_message(&self) -> Message {
        match self {
            Received::Text(text) => Message::Text((*text).to_owned()),
            Received::Binary(data) => Message::Binary(data.to_vec()),
        }
    }
}

/// An owned message lent again, e.g. to [`Ctx::send`](super::Ctx::send).
///
/// ```
/// use rfc6455::server::{Message, Received};
///
/// let owned = Message::Text("hi".into());
/// assert_eq!(Received::from(&owned), Received::Text("hi"));
/// ```
impl<'a> From<&'a Message> for Received<'a> {
    fn from(message: &'a Message) -> Self {
        match message {
            Message::Text(text) => Received::Text(text),
            Message::Binary(data) => Received::Binary(data),
        }
    }
}
