//! The Autobahn TestSuite's client testee: asks the fuzzing server how many cases there
//! are, runs each one by echoing every message, then asks it to write the reports.
//!
//! ```text
//! wstest -m fuzzingserver -s autobahn/fuzzingserver.json &
//! cargo run --release --example autobahn_client -- ws://127.0.0.1:9001
//! ```

use rfc6455::blocking::{self, Error};
use rfc6455::deflate::DeflateConfig;
use rfc6455::{CloseCode, Config, Event};

const AGENT: &str = "rfc6455";

fn main() -> Result<(), Error> {
    let base = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "ws://127.0.0.1:9001".to_string());
    let base = base.trim_end_matches('/');

    let count = case_count(base)?;
    eprintln!("{count} cases");
    for case in 1..=count {
        let url = format!("{base}/runCase?case={case}&agent={AGENT}");
        if let Err(e) = run_case(&url) {
            // Failing the connection is often the expected behaviour of a case.
            eprintln!("case {case}: {e}");
        }
    }
    let mut ws = blocking::connect(&format!("{base}/updateReports?agent={AGENT}"))?;
    ws.close(CloseCode::NORMAL, "")?;
    drain(&mut ws);
    eprintln!("reports updated");
    Ok(())
}

fn case_count(base: &str) -> Result<u32, Error> {
    let mut ws = blocking::connect(&format!("{base}/getCaseCount"))?;
    let mut count = None;
    loop {
        match ws.read() {
            Ok(Event::Text(text)) => count = text.trim().parse().ok(),
            Ok(Event::Close(_)) | Err(Error::Closed) => break,
            Ok(_) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(count.unwrap_or(0))
}

fn run_case(url: &str) -> Result<(), Error> {
    // permessage-deflate offered as browsers do: context takeover both ways, window
    // limits left to the server (Autobahn's 12.*/13.* cases choose them).
    let config = Config {
        max_frame_size: 64 << 20,
        max_message_size: 64 << 20,
        deflate: Some(DeflateConfig {
            no_context_takeover: false,
            request_no_context_takeover: false,
            ..DeflateConfig::default()
        }),
        ..Config::default()
    };
    let mut ws = blocking::connect_with(url, config, &[])?;
    loop {
        match ws.read() {
            Ok(Event::Text(text)) => ws.send_text(&text)?,
            Ok(Event::Binary(data)) => ws.send_binary(&data)?,
            Ok(Event::Ping(_) | Event::Pong(_) | Event::Close(_)) => {}
            Err(Error::Closed) => return Ok(()),
            Err(e) => return Err(e),
        }
    }
}

fn drain(ws: &mut blocking::WebSocket<rfc6455::blocking::ClientStream>) {
    while ws.read().is_ok() {}
}
