//! A connection's identity across the loops.

/// A connection's identity, stable for its lifetime: the loop it lives on (see
/// [`ServerConfig::threads`](super::ServerConfig::threads)), its slab key, and a
/// generation, so that a stale id never reaches a later connection in the same slot.
/// Displayed as `#slot.generation@loop`.
///
/// ```
/// use rfc6455::server::{ConnId, Ctx, Handler, Refusal};
/// use rfc6455::Event;
/// # use rfc6455::server::{Accept, Server, ServerConfig};
///
/// /// Tells each client the id it has on the server (as in the server's log lines).
/// struct Ids;
/// impl Handler for Ids {
///     type Data = ();
/// #   fn upgrade(&mut self, _: &rfc6455::handshake::server::Request) -> Result<Accept<()>, Refusal> {
/// #       Ok(Accept::new(()))
/// #   }
///     fn open(&mut self, ctx: &mut Ctx<'_, ()>, id: ConnId) {
///         ctx.send_text(id, &id.to_string());
///     }
/// }
/// # let server = Server::bind("127.0.0.1:0".parse().unwrap(), ServerConfig::default())?;
/// # let (addr, handle) = (server.local_addr()?, server.handle());
/// # let url = format!("ws://{addr}/");
/// # let server_thread = std::thread::spawn(move || server.run(Ids));
/// let (mut alice, mut bob) = (rfc6455::blocking::connect(&url)?, rfc6455::blocking::connect(&url)?);
/// let (Event::Text(a), Event::Text(b)) = (alice.read()?, bob.read()?) else { panic!() };
/// assert!(a.starts_with('#') && a.ends_with("@0")); // one loop: loop 0
/// assert_ne!(a, b);
/// # drop((alice, bob));
/// # handle.shutdown();
/// # server_thread.join().unwrap()?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId {
    pub(super) worker: usize,
    pub(super) slot: usize,
    pub(super) generation: u64,
}

impl ConnId {
    /// The index of the event loop the connection lives on (0 with one loop).
    ///
    /// ```
    /// use rfc6455::server::{Balance, ConnId, Ctx, Handler, Refusal, ServerConfig};
    /// use rfc6455::Event;
    /// # use rfc6455::server::{Accept, Server};
    ///
    /// struct Where;
    /// impl Handler for Where {
    ///     type Data = ();
    /// #   fn upgrade(&mut self, _: &rfc6455::handshake::server::Request) -> Result<Accept<()>, Refusal> {
    /// #       Ok(Accept::new(()))
    /// #   }
    ///     fn open(&mut self, ctx: &mut Ctx<'_, ()>, id: ConnId) {
    ///         ctx.send_text(id, &format!("loop {}", id.worker()));
    ///     }
    /// }
    /// // Two loops; each new connection goes to the one with the fewest.
    /// let config = ServerConfig { threads: 2, balance: Balance::LeastConnections, ..ServerConfig::default() };
    /// # let server = Server::bind("127.0.0.1:0".parse().unwrap(), config)?;
    /// # let (url, handle) = (format!("ws://{}/", server.local_addr()?), server.handle());
    /// # let server_thread = std::thread::spawn(move || server.run_with(|_| Where));
    /// let mut first = rfc6455::blocking::connect(&url)?;
    /// assert_eq!(first.read()?, Event::Text("loop 0".into()));
    /// let mut second = rfc6455::blocking::connect(&url)?;
    /// assert_eq!(second.read()?, Event::Text("loop 1".into()));
    /// # drop((first, second));
    /// # handle.shutdown();
    /// # server_thread.join().unwrap()?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn worker(&self) -> usize {
        self.worker
    }
}

/// For the unit tests of the server's modules.
#[cfg(test)]
impl ConnId {
    /// A connection of loop 0 in slot `slot`.
    pub(super) fn for_test(slot: usize) -> ConnId {
        ConnId {
            worker: 0,
            slot,
            generation: slot as u64,
        }
    }
}

impl std::fmt::Display for ConnId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "#{}.{}@{}", self.slot, self.generation, self.worker)
    }
}
