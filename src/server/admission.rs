//! Who may take a connection slot: the process-wide counts behind
//! [`ServerConfig::max_handshaking`], [`ServerConfig::max_connections_per_ip`] and
//! [`ServerConfig::max_streams`]. Checked when a connection is accepted (before a byte
//! of it is read) and when a stream opens; every loop shares one `Admission`.

use super::config::ServerConfig;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

/// Why a new connection was closed at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Refusal {
    /// `max_handshaking` connections have not finished their request yet.
    TooManyHandshakes,
    /// `max_connections_per_ip` connections from its address are open.
    TooManyFromPeer,
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Refusal::TooManyHandshakes => "too many connections in their handshake",
            Refusal::TooManyFromPeer => "too many connections from this address",
        })
    }
}

#[derive(Debug, Default)]
pub(super) struct Admission {
    handshaking: AtomicUsize,
    streams: AtomicUsize,
    /// Connections per address; only kept when `max_connections_per_ip` is set.
    per_ip: Mutex<HashMap<IpAddr, usize>>,
}

/// Adds one to `counter` unless it is at `max`.
fn take(counter: &AtomicUsize, max: usize) -> Result<(), usize> {
    counter
        .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
            (n < max).then_some(n + 1)
        })
        .map(|_| ())
}

impl Admission {
    /// A connection from `peer` was accepted: counts it in its handshake and for its
    /// address, or says why it may not stay.
    pub(super) fn enter(&self, peer: IpAddr, config: &ServerConfig) -> Result<(), Refusal> {
        take(&self.handshaking, config.max_handshaking).map_err(|_| Refusal::TooManyHandshakes)?;
        if let Some(max) = config.max_connections_per_ip {
            let mut per_ip = self.per_ip.lock().unwrap_or_else(|p| p.into_inner());
            let count = per_ip.entry(peer).or_insert(0);
            if *count >= max {
                drop(per_ip);
                self.handshake_over();
                return Err(Refusal::TooManyFromPeer);
            }
            *count += 1;
        }
        Ok(())
    }

    /// A connection counted by [`enter`](Self::enter) finished its request (or went).
    pub(super) fn handshake_over(&self) {
        self.handshaking.fetch_sub(1, Ordering::AcqRel);
    }

    /// A connection counted by [`enter`](Self::enter) is gone.
    pub(super) fn leave(&self, peer: IpAddr, config: &ServerConfig) {
        if config.max_connections_per_ip.is_none() {
            return;
        }
        let mut per_ip = self.per_ip.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(count) = per_ip.get_mut(&peer) {
            *count -= 1;
            if *count == 0 {
                per_ip.remove(&peer);
            }
        }
    }

    /// Counts one more stream unless `max` are open; `Err` holds how many are.
    pub(super) fn open_stream(&self, max: usize) -> Result<(), usize> {
        take(&self.streams, max).map_err(|_| self.streams.load(Ordering::Acquire))
    }

    pub(super) fn stream_closed(&self) {
        self.streams.fetch_sub(1, Ordering::AcqRel);
    }

    /// Connections in their handshake now (all loops).
    pub(super) fn handshaking(&self) -> usize {
        self.handshaking.load(Ordering::Acquire)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handshakes_and_addresses_are_capped_and_released() {
        let config = ServerConfig {
            max_handshaking: 3,
            max_connections_per_ip: Some(2),
            ..ServerConfig::default()
        };
        let admission = Admission::default();
        let (a, b): (IpAddr, IpAddr) = ("127.0.0.1".parse().unwrap(), "::1".parse().unwrap());
        assert_eq!(admission.enter(a, &config), Ok(()));
        assert_eq!(admission.enter(a, &config), Ok(()));
        assert_eq!(admission.enter(a, &config), Err(Refusal::TooManyFromPeer));
        assert_eq!(admission.handshaking(), 2, "a refused one is not counted");
        assert_eq!(admission.enter(b, &config), Ok(()));
        assert_eq!(admission.enter(b, &config), Err(Refusal::TooManyHandshakes));
        admission.handshake_over();
        admission.leave(a, &config);
        assert_eq!(admission.enter(a, &config), Ok(()));
    }

    #[test]
    fn streams_are_capped() {
        let admission = Admission::default();
        assert_eq!(admission.open_stream(1), Ok(()));
        assert_eq!(admission.open_stream(1), Err(1));
        admission.stream_closed();
        assert_eq!(admission.open_stream(1), Ok(()));
    }
}
