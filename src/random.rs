//! Unpredictable bytes from the operating system, for masking keys (RFC 6455 §5.3,
//! §10.3) and handshake nonces (§4.1).

/// Fills `buf` from the OS random number generator.
///
/// # Panics
/// If the OS has no working random source: without one, masking keys would be
/// predictable, which §10.3 forbids, so there is no safe fallback.
pub(crate) fn fill(buf: &mut [u8]) {
    getrandom::fill(buf).expect("the OS random number generator failed");
}

/// Masking keys drawn from the OS random generator 64 at a time.
///
/// Every key is fresh OS randomness used once (RFC 6455 §5.3: "the masking key MUST be
/// derived from a strong source of entropy ... the next one unpredictable"); batching
/// only saves a system call per frame.
#[derive(Debug, Clone)]
pub(crate) struct MaskKeys {
    pool: [u8; 256],
    used: usize,
}

impl MaskKeys {
    pub(crate) fn new() -> Self {
        MaskKeys {
            pool: [0; 256],
            used: 256,
        }
    }

    pub(crate) fn next_key(&mut self) -> [u8; 4] {
        if self.used == self.pool.len() {
            fill(&mut self.pool);
            self.used = 0;
        }
        let k = &self.pool[self.used..self.used + 4];
        self.used += 4;
        [k[0], k[1], k[2], k[3]]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_do_not_repeat() {
        let mut keys = MaskKeys::new();
        let drawn: std::collections::HashSet<[u8; 4]> =
            (0..1000).map(|_| keys.next_key()).collect();
        // 1000 draws from 2^32: a repeat has probability ~1e-4.
        assert!(drawn.len() >= 999);
    }
}
