//! A connection's transport: the TCP socket, or TLS over it (feature `tls`).
//!
//! The rest of the loop reads and writes plaintext through [`Socket::read`] and
//! [`Socket::write_vectored`] and never sees a record. With TLS, a rustls `ServerConnection`
//! sits between the socket and the WebSocket [`Connection`](crate::Connection): both
//! are sans-IO, so reading is "socket → `read_tls` → `process_new_packets` → plaintext",
//! writing is "plaintext → `writer()` → `write_tls` → socket", and the handshake runs
//! inside the reads (its answers are flushed as they come).
//!
//! Memory stays bounded: plaintext is taken out as soon as it is decrypted, and new
//! plaintext is only accepted once the previous ciphertext is on the socket, so rustls
//! holds at most one write's records (its buffer limit, 64 KiB) per connection.

use mio::net::TcpStream;
use std::io::{self, IoSlice, Read};
use std::net::Shutdown;

pub(super) enum Socket {
    Plain(TcpStream),
    #[cfg(feature = "tls")]
    Tls(Box<tls::TlsSocket>),
}

impl Socket {
    /// True for a plain TCP socket: a read that returns less than asked for has then
    /// emptied the kernel's buffer (TLS may hold decrypted bytes back).
    pub(super) fn is_plain(&self) -> bool {
        matches!(self, Socket::Plain(_))
    }

    /// A new connection's transport: TLS when the server has a TLS configuration.
    /// rustls refuses only a configuration it cannot serve with (no protocol version
    /// in common with its provider), which `tls::server_config` never makes.
    pub(super) fn new(tcp: TcpStream, config: &super::ServerConfig) -> io::Result<Socket> {
        #[cfg(feature = "tls")]
        if let Some(tls) = &config.tls {
            let session = rustls::ServerConnection::new(tls.clone()).map_err(io::Error::other)?;
            return Ok(Socket::Tls(Box::new(tls::TlsSocket::new(tcp, session))));
        }
        let _ = config;
        Ok(Socket::Plain(tcp))
    }

    /// The TCP socket, to register with the poll.
    pub(super) fn tcp(&mut self) -> &mut TcpStream {
        match self {
            Socket::Plain(tcp) => tcp,
            #[cfg(feature = "tls")]
            Socket::Tls(tls) => &mut tls.tcp,
        }
    }

    /// Reads plaintext. `Ok(0)` is the end: the peer's TCP FIN (or TLS close_notify).
    /// A TLS failure is an error of kind `InvalidData` whose message says what failed.
    pub(super) fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Socket::Plain(tcp) => tcp.read(buf),
            #[cfg(feature = "tls")]
            Socket::Tls(tls) => tls.read(buf),
        }
    }

    /// Writes plaintext gathered from several buffers, in order: one `writev` on a
    /// plain socket (a broadcast's queued frames go out in one system call, not one
    /// each). `WouldBlock` while earlier output is still on its way.
    pub(super) fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        match self {
            Socket::Plain(tcp) => send_gathered(tcp, bufs),
            #[cfg(feature = "tls")]
            Socket::Tls(tls) => tls.write_vectored(bufs),
        }
    }

    /// Sends what the transport itself still holds (TLS records); true while some is
    /// left for the next writable event.
    pub(super) fn flush_transport(&mut self) -> io::Result<bool> {
        match self {
            Socket::Plain(_) => Ok(false),
            #[cfg(feature = "tls")]
            Socket::Tls(tls) => tls.flush_records(),
        }
    }

    /// Whether the transport holds output of its own (TLS handshake records).
    pub(super) fn has_transport_output(&self) -> bool {
        match self {
            Socket::Plain(_) => false,
            #[cfg(feature = "tls")]
            Socket::Tls(tls) => tls.session.wants_write(),
        }
    }

    /// Ends our side: TLS `close_notify` (best effort), then the TCP FIN.
    pub(super) fn shutdown_write(&mut self) {
        #[cfg(feature = "tls")]
        if let Socket::Tls(tls) = self {
            tls.session.send_close_notify();
            let _ = tls.flush_records();
        }
        let _ = self.tcp().shutdown(Shutdown::Write);
    }

    /// What the TLS session agreed (version, cipher suite, ALPN, SNI), once, when its
    /// handshake is over: for `--trace`. `None` before, after and without TLS.
    pub(super) fn take_description(&mut self) -> Option<String> {
        match self {
            Socket::Plain(_) => None,
            #[cfg(feature = "tls")]
            Socket::Tls(tls) => tls.take_description(),
        }
    }
}

/// `writev`, without SIGPIPE: `writev` has no flag for it, and on a connection the
/// peer has reset it raises the signal (EPIPE), which kills a process whose host did
/// not ignore it (a C program, libFuzzer's main; `tests/sigpipe.rs`). `sendmsg` with
/// `MSG_NOSIGNAL` is the same gathered write without the signal — as std's `write`
/// (a `send` with that flag) always was.
#[cfg(any(target_os = "linux", target_os = "android"))]
fn send_gathered(tcp: &mut TcpStream, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
    socket2::SockRef::from(&*tcp).send_vectored_with_flags(bufs, libc::MSG_NOSIGNAL)
}

/// Elsewhere std and mio mark sockets `SO_NOSIGPIPE` where the platform has it.
#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn send_gathered(tcp: &mut TcpStream, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
    std::io::Write::write_vectored(tcp, bufs)
}

/// The socket as rustls' `write_tls` sees it: its records go out with
/// [`send_gathered`] too (rustls writes them with `write_vectored`).
#[cfg(feature = "tls")]
struct NoSigpipe<'a>(&'a mut TcpStream);

#[cfg(feature = "tls")]
impl std::io::Write for NoSigpipe<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        send_gathered(self.0, &[IoSlice::new(buf)])
    }

    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        send_gathered(self.0, bufs)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(feature = "tls")]
mod tls {
    use mio::net::TcpStream;
    use std::io::{self, IoSlice, Read, Write};

    /// The first byte of a TLS handshake record (RFC 8446 §5.1: `handshake(22)`).
    const HANDSHAKE_RECORD: u8 = 22;

    /// Sent, in clear, to a client that speaks plain HTTP to the TLS port (as nginx
    /// does with its 497): a person with `curl http://` learns what is wrong.
    const PLAIN_HTTP_ANSWER: &[u8] = b"HTTP/1.1 400 Bad Request\r\n\
        Content-Type: text/plain; charset=utf-8\r\nContent-Length: 51\r\nConnection: close\r\n\r\n\
        This port speaks TLS: use https:// or wss:// here.\n";

    pub(in crate::server) struct TlsSocket {
        pub(super) tcp: TcpStream,
        pub(super) session: rustls::ServerConnection,
        /// The first bytes were looked at (plain HTTP or a TLS record?).
        checked_first_byte: bool,
        /// The TCP stream ended (the session may still hold plaintext).
        eof: bool,
        /// The session has been described (see `take_description`).
        described: bool,
    }

    impl TlsSocket {
        pub(super) fn new(tcp: TcpStream, session: rustls::ServerConnection) -> TlsSocket {
            TlsSocket {
                tcp,
                session,
                checked_first_byte: false,
                eof: false,
                described: false,
            }
        }

        pub(super) fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            self.read_with(|reader| reader.read(buf))
        }

        /// Hands the next piece of decrypted bytes to `ws` straight from the session's
        /// buffer (`BufRead`), without a copy into a read buffer first: with
        /// `Connection::receive`, the rest of a large frame is unmasked from the
        /// plaintext into its message in one pass. (A plain socket is read by the
        /// event loop itself, which chooses the buffer by how busy the connection is.)
        pub(in crate::server) fn receive_into(
            &mut self,
            ws: &mut crate::Connection,
        ) -> io::Result<usize> {
            use std::io::BufRead;
            self.read_with(|reader| {
                let plaintext = reader.fill_buf()?;
                let n = plaintext.len();
                ws.receive(plaintext);
                reader.consume(n);
                Ok(n)
            })
        }

        /// Takes plaintext with `take` (its `Ok(0)`: the session ended cleanly), reading
        /// and decrypting records from the socket until there is some.
        fn read_with(
            &mut self,
            mut take: impl FnMut(&mut rustls::Reader<'_>) -> io::Result<usize>,
        ) -> io::Result<usize> {
            loop {
                match take(&mut self.session.reader()) {
                    Ok(n) => return Ok(n),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    // The TCP stream ended without close_notify. The WebSocket closing
                    // handshake, not TLS, says whether the conversation was complete
                    // (RFC 6455 §7.1.5), so this is an end like any other.
                    Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(0),
                    Err(e) => return Err(e),
                }
                if self.eof {
                    return Ok(0);
                }
                if !self.checked_first_byte {
                    self.check_first_byte()?;
                }
                match self.session.read_tls(&mut self.tcp) {
                    Ok(0) => self.eof = true,
                    Ok(_) => {}
                    Err(e) => return Err(e),
                }
                if let Err(e) = self.session.process_new_packets() {
                    // rustls queued an alert that tells the peer why: try to send it.
                    let _ = self.session.write_tls(&mut super::NoSigpipe(&mut self.tcp));
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!("TLS failed: {e}"),
                    ));
                }
                // The handshake's answers (and, later, key updates) go out now; what
                // does not fit waits for a writable event (see `has_transport_output`).
                self.flush_records()?;
            }
        }

        /// A client that sends plain HTTP to the TLS port gets a clear answer in clear
        /// text instead of a TLS alert it cannot read.
        fn check_first_byte(&mut self) -> io::Result<()> {
            let mut first = [0u8; 1];
            let n = self.tcp.peek(&mut first)?;
            self.checked_first_byte = n == 1;
            if n == 1 && first[0] != HANDSHAKE_RECORD && first[0].is_ascii_uppercase() {
                let _ = self.tcp.write(PLAIN_HTTP_ANSWER);
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "TLS failed: the client sent plain HTTP (answered 400 in clear text)",
                ));
            }
            Ok(())
        }

        pub(super) fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
            // New plaintext only once the previous records are out: one write's worth
            // of ciphertext at most waits in rustls.
            if self.flush_records()? {
                return Err(io::ErrorKind::WouldBlock.into());
            }
            let n = self.session.writer().write_vectored(bufs)?;
            if n == 0 && bufs.iter().any(|b| !b.is_empty()) {
                return Err(io::ErrorKind::WouldBlock.into());
            }
            self.flush_records()?;
            Ok(n)
        }

        /// Writes the records rustls holds; true while some are left.
        pub(super) fn flush_records(&mut self) -> io::Result<bool> {
            while self.session.wants_write() {
                match self.session.write_tls(&mut super::NoSigpipe(&mut self.tcp)) {
                    Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                    Ok(_) => {}
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(true),
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(e),
                }
            }
            Ok(false)
        }

        pub(super) fn take_description(&mut self) -> Option<String> {
            if self.described {
                return None;
            }
            let line = crate::tls::describe(&self.session, self.session.server_name())?;
            self.described = true;
            Some(line)
        }
    }
}
