//! `rfc6455 client`: a terminal client like wscat.

use rfc6455::blocking::{self, Error};
use rfc6455::deflate::DeflateConfig;
use rfc6455::{CloseCode, Event};
use std::io::BufRead;
use std::sync::mpsc;

/// `rfc6455 client`: stdin lines out, messages in, on one thread that polls the socket
/// with a short read timeout between lines; `deflate` offers permessage-deflate.
/// `ca`: for `wss://`, the PEM file of the certificates to trust instead of the
/// platform's roots.
pub fn client(
    url: &str,
    trace: bool,
    deflate: bool,
    ca: Option<&std::path::Path>,
) -> Result<String, String> {
    let config = rfc6455::Config {
        trace,
        deflate: deflate.then(DeflateConfig::default),
        ..rfc6455::Config::default()
    };
    let mut ws = match ca {
        Some(ca) => {
            let tls = rfc6455::tls::client_config_with_ca(ca).map_err(|e| e.to_string())?;
            blocking::connect_with_tls(url, config, &[], tls)
        }
        None => blocking::connect_with(url, config, &[]),
    }
    .map_err(|e| e.to_string())?;
    if trace {
        if let Some(session) = ws
            .get_ref()
            .tls()
            .and_then(|s| rfc6455::tls::describe(s, None))
        {
            eprintln!("TLS {session}");
        }
    }
    if let Some((request, response)) = ws.handshake_heads() {
        for (arrow, head) in [("->", request), ("<-", response)] {
            for line in String::from_utf8_lossy(head).lines() {
                eprintln!("{arrow} {line}");
            }
        }
    }
    eprintln!("connected to {url} (type lines; /ping, /close CODE REASON, Ctrl-D to quit)");
    let (lines_tx, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines().map_while(Result::ok) {
            if lines_tx.send(line).is_err() {
                break;
            }
        }
    });
    ws.get_mut()
        .set_read_timeout(Some(std::time::Duration::from_millis(50)))
        .map_err(|e| e.to_string())?;
    let mut stdin_open = true;
    loop {
        let result = ws.read();
        if trace {
            for frame in ws.take_trace() {
                eprintln!("{frame}");
            }
        }
        match result {
            Ok(Event::Text(text)) => println!("< {text}"),
            Ok(Event::Binary(data)) => println!("< binary, {} bytes", data.len()),
            Ok(Event::Ping(p)) => println!("< ping {}", String::from_utf8_lossy(&p)),
            Ok(Event::Pong(p)) => println!("< pong {}", String::from_utf8_lossy(&p)),
            Ok(Event::Close(frame)) => match frame {
                Some(f) => println!("< close {} {:?}", f.code, f.reason),
                None => println!("< close (no status)"),
            },
            Err(Error::Closed) => return Ok(String::new()),
            Err(Error::Io(e))
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(e) => return Err(e.to_string()),
        }
        while stdin_open {
            let line = match lines.try_recv() {
                Ok(line) => line,
                Err(mpsc::TryRecvError::Empty) => break,
                Err(mpsc::TryRecvError::Disconnected) => {
                    stdin_open = false;
                    if !ws.connection().is_closed() {
                        let _ = ws.close(CloseCode::NORMAL, "");
                    }
                    break;
                }
            };
            let sent = if let Some(text) = line.strip_prefix("/ping") {
                ws.send_ping(text.trim().as_bytes())
            } else if let Some(rest) = line.strip_prefix("/close") {
                let mut parts = rest.trim().splitn(2, ' ');
                let code = parts.next().and_then(|c| c.parse().ok()).unwrap_or(1000);
                ws.close(CloseCode(code), parts.next().unwrap_or(""))
            } else {
                ws.send_text(&line)
            };
            if let Err(e) = sent {
                eprintln!("cannot send: {e}");
            }
            if trace {
                for frame in ws.take_trace() {
                    eprintln!("{frame}");
                }
            }
        }
    }
}
