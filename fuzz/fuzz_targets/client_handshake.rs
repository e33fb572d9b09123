// The client's side of the opening handshake, from a URL and offers in the fuzz input:
// `WsUrl::parse` of arbitrary text (a parser of what users type), then the request our
// client writes for it, read by our server. Invariants:
// - a URL that parses prints back (scheme, `host_header`, resource) to the same URL;
// - the client's request is one our server accepts (RFC 6455 §4.1 and §4.2.1 agree in
//   this crate), whole, with the URL's host and resource, the client's key, its
//   subprotocols and its extra headers as sent;
// - the server's 101 (a subprotocol chosen from the offer, permessage-deflate
//   negotiated when offered) is accepted by the client, which reports the same
//   subprotocol and the same deflate parameters;
// - any other status (`reject`) is refused by the client, never accepted.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use rfc6455::deflate::DeflateConfig;
use rfc6455::handshake::client::{ClientHandshake, WsUrl};
use rfc6455::handshake::server::{reason_phrase, reject, Request};
use rfc6455::handshake::HeadReader;

#[derive(Arbitrary, Debug)]
struct Input {
    url: String,
    protocols: Vec<String>,
    extra: Vec<(String, String)>,
    /// Offer permessage-deflate: (client_no_context_takeover, client_max_window_bits).
    deflate: Option<(bool, u8)>,
    /// Which offered subprotocol the server picks (none when the offer is empty).
    pick: u8,
    /// A status for a refusal.
    status: u16,
}

/// An RFC 7230 token: what a subprotocol (RFC 6455 §4.1 item 10) or a header name is.
fn token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

fuzz_target!(|input: Input| {
    let url = match WsUrl::parse(&input.url) {
        Ok(url) => url,
        Err(err) => {
            assert!(!err.to_string().is_empty());
            return;
        }
    };
    let scheme = if url.secure { "wss" } else { "ws" };
    let printed = format!("{scheme}://{}{}", url.host_header(), url.resource);
    assert_eq!(WsUrl::parse(&printed).as_ref(), Ok(&url), "{printed}");

    // Offers the API takes as given: tokens, and extra headers that are not the
    // handshake's own (a second Host or key would rightly be refused).
    let protocols: Vec<&str> = input
        .protocols
        .iter()
        .map(String::as_str)
        .filter(|p| token(p))
        .take(8)
        .collect();
    let extra: Vec<(&str, &str)> = input
        .extra
        .iter()
        .filter(|(name, value)| {
            token(name)
                && ![
                    "host",
                    "upgrade",
                    "connection",
                    "content-length",
                    "transfer-encoding",
                ]
                .contains(&name.to_ascii_lowercase().as_str())
                && !name.to_ascii_lowercase().starts_with("sec-websocket-")
                && value
                    .bytes()
                    .all(|b| b == b'\t' || (b' '..=b'~').contains(&b))
        })
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .take(8)
        .collect();
    let offer = input.deflate.map(|(no_context, bits)| DeflateConfig {
        request_no_context_takeover: no_context,
        request_max_window_bits: (8..=15).contains(&bits).then_some(bits),
        ..DeflateConfig::default()
    });
    let (client, request) = match &offer {
        Some(config) => ClientHandshake::offering_deflate(&url, &protocols, &extra, config),
        None => ClientHandshake::new(&url, &protocols, &extra),
    };

    // Our server reads the whole request and accepts it as sent.
    let mut reader = HeadReader::new(64 * 1024);
    assert_eq!(reader.push(&request), Ok(Some(request.len())));
    assert_eq!(reader.head_len(), Some(request.len()));
    assert!(reader.take_rest().is_empty());
    let parsed = match Request::parse(&request) {
        Ok(parsed) => parsed,
        Err(err) => panic!(
            "our server refuses our client's request ({err}): {:?}",
            String::from_utf8_lossy(&request)
        ),
    };
    assert_eq!(parsed.host(), url.host_header());
    assert_eq!(parsed.header("host"), Some(url.host_header().as_str()));
    assert_eq!(parsed.target(), url.resource);
    assert_eq!(parsed.query(), url.resource.split_once('?').map(|(_, q)| q));
    assert_eq!(parsed.key(), client.key());
    assert_eq!(parsed.protocols(), &protocols[..]);
    for (name, value) in &extra {
        let sent = parsed
            .headers()
            .iter()
            .any(|(n, v)| n.eq_ignore_ascii_case(name) && v == value.trim_matches([' ', '\t']));
        assert!(sent, "{name}: {value:?} not received");
    }
    if let Some(origin) = extra.iter().find(|(n, _)| n.eq_ignore_ascii_case("origin")) {
        assert_eq!(parsed.origin(), Some(origin.1.trim_matches([' ', '\t'])));
    }
    assert_eq!(parsed.extensions().is_empty(), offer.is_none());

    // The server's 101 is one the client accepts, with what the server chose.
    let chosen = (!protocols.is_empty()).then(|| protocols[input.pick as usize % protocols.len()]);
    let (response, agreed) = parsed.accept_negotiating(chosen, Some(&DeflateConfig::default()));
    assert_eq!(agreed.is_some(), offer.is_some());
    match client.validate(&response) {
        Ok(accepted) => {
            assert_eq!(accepted.protocol.as_deref(), chosen);
            // The same agreement seen from the other end: local and remote swap.
            let seen = |n: rfc6455::deflate::Negotiated| {
                (
                    n.local_no_context_takeover,
                    n.remote_no_context_takeover,
                    n.local_max_window_bits,
                    n.remote_max_window_bits,
                )
            };
            let swapped = |n: rfc6455::deflate::Negotiated| {
                (
                    n.remote_no_context_takeover,
                    n.local_no_context_takeover,
                    n.remote_max_window_bits,
                    n.local_max_window_bits,
                )
            };
            assert_eq!(accepted.deflate.map(seen), agreed.map(swapped));
        }
        Err(err) => panic!(
            "our client refuses our server's 101 ({err}): {:?}",
            String::from_utf8_lossy(&response)
        ),
    }

    // Any other answer is refused, with a reason that says something.
    let status = input.status % 600;
    if status != 101 {
        let refusal = reject(status, &[], reason_phrase(status));
        let err = client.validate(&refusal).expect_err("a refusal accepted");
        assert!(!err.to_string().is_empty());
    }
});
