//! The handler's no to an upgrade: a status, one line saying why, and any headers the
//! status calls for (`WWW-Authenticate` with a 401, `Retry-After` with a 429).

/// The answer to an upgrade the [`Handler`](super::Handler) refuses, sent instead of
/// the 101 (RFC 6455 §4.2.2: "if the server chooses not to accept the connection, it
/// MUST return an appropriate HTTP error code"). A bare status converts into one, so
/// `Err(403.into())` is enough where the reason needs no words.
///
/// ```
/// use rfc6455::handshake::server::Request;
/// use rfc6455::server::{Accept, Handler, Refusal};
/// # use rfc6455::server::{Server, ServerConfig};
///
/// /// Lets in only requests that carry a ticket.
/// struct Door;
/// impl Handler for Door {
///     type Data = ();
///     fn upgrade(&mut self, request: &Request) -> Result<Accept<()>, Refusal> {
///         match request.header("x-ticket") {
///             Some("ok") => Ok(Accept::new(())),
///             Some(_) => Err(Refusal::new(401, "this ticket is not valid")
///                 .with_header("WWW-Authenticate", "Ticket")),
///             None => Err(401.into()),
///         }
///     }
/// }
/// # let server = Server::bind("127.0.0.1:0".parse().unwrap(), ServerConfig::default())?;
/// # let (addr, handle) = (server.local_addr()?, server.handle());
/// # let server_thread = std::thread::spawn(move || server.run(Door));
/// use std::io::{Read, Write};
/// let mut tcp = std::net::TcpStream::connect(addr)?;
/// tcp.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
///     Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\
///     X-Ticket: forged\r\n\r\n")?;
/// let mut answer = String::new();
/// tcp.read_to_string(&mut answer)?;
/// assert!(answer.starts_with("HTTP/1.1 401 "));
/// assert!(answer.contains("WWW-Authenticate: Ticket\r\n"));
/// assert!(answer.ends_with("\r\n\r\nthis ticket is not valid\n"));
/// # handle.shutdown();
/// # server_thread.join().unwrap()?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// The HTTP status (4xx or 5xx).
    pub status: u16,
    /// One line for the body, without its newline: what a person reading the
    /// response, or a client's error, is told.
    pub reason: String,
    /// Headers to add, as (name, value).
    pub headers: Vec<(String, String)>,
}

impl Refusal {
    /// A refusal with `status` and one line of `reason` (a line break in it would
    /// end the line early: it is replaced by a space).
    ///
    /// ```
    /// use rfc6455::server::Refusal;
    ///
    /// let refusal = Refusal::new(429, "too many connections\nfor this user");
    /// assert_eq!(refusal.reason, "too many connections for this user");
    /// ```
    pub fn new(status: u16, reason: &str) -> Self {
        Refusal {
            status,
            reason: reason.replace(['\r', '\n'], " "),
            headers: Vec::new(),
        }
    }

    /// The same refusal with one more header.
    ///
    /// ```
    /// use rfc6455::server::Refusal;
    ///
    /// let refusal = Refusal::new(429, "slow down").with_header("Retry-After", "5");
    /// assert_eq!(refusal.headers, [("Retry-After".to_string(), "5".to_string())]);
    /// ```
    pub fn with_header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }
}

impl From<u16> for Refusal {
    /// A bare status: the body says only that the upgrade was refused.
    ///
    /// ```
    /// use rfc6455::server::Refusal;
    ///
    /// assert_eq!(Refusal::from(404), Refusal::new(404, "upgrade refused"));
    /// ```
    fn from(status: u16) -> Self {
        Refusal::new(status, "upgrade refused")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reason_stays_one_line() {
        let refusal = Refusal::new(401, "bad\r\nSet-Cookie: x=1");
        assert!(!refusal.reason.contains(['\r', '\n']));
    }
}
