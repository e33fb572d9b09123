//! The chat page in real browsers: starts `rfc6455 serve`, opens the page in two
//! headless Chromium sessions, a laptop window (1280×800) and a phone (390×844), that
//! each join one room and say something, and watches the room (as a third, WebSocket
//! client) until each browser reports that every control of its page lies inside the
//! viewport (first screen and joined), that its WebSocket negotiated permessage-deflate
//! (RFC 7692, Chromium's offer and our answer), and that it saw the other's message. Exits
//! non-zero if a page reports a layout problem, or the reports do not come within
//! 30 s: when the page, the server or the browser's WebSocket breaks. Then it keeps a
//! screenshot of the first screen at each size in `target/screenshots/` (CI artifacts).
//!
//! ```text
//! cargo build --release --bins --examples && target/release/examples/browser_check
//! ```
//!
//! Needs `chromium` (Debian: `apt-get install chromium`); `tests/setup.sh` installs it.

// Shared with the tests, which use more of it than this example does.
#[path = "../tests/support/browser.rs"]
#[allow(dead_code)]
mod browser;

use browser::{profile_dir, Page, FLAGS};
use rfc6455::blocking;
use rfc6455::Event;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const ROOM: &str = "browser-test";
/// The window sizes the page must fit: a laptop and a phone.
const LAPTOP: (u32, u32) = (1280, 800);
const PHONE: (u32, u32) = (390, 844);

/// A screenshot of the page's first screen at one size.
fn screenshot(browser: &str, (w, h): (u32, u32), url: &str, out: &std::path::Path) -> bool {
    let label = format!("shot-{w}x{h}");
    let status = Command::new(browser)
        .args(FLAGS)
        .arg(format!("--window-size={w},{h}"))
        .arg(format!("--user-data-dir={}", profile_dir(&label).display()))
        .arg("--virtual-time-budget=3000")
        .arg(format!("--screenshot={}", out.display()))
        .arg(url)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    status.is_ok_and(|s| s.success()) && std::fs::metadata(out).is_ok_and(|m| m.len() > 0)
}

/// The extensions a page's WebSocket negotiated, from its "extensions:..." report.
fn extensions_report(text: &str, from: &str) -> Option<String> {
    if !text.contains(&format!(r#""from":"{from}""#)) {
        return None;
    }
    let value: serde_json::Value = serde_json::from_str(text).ok()?;
    Some(
        value["text"]
            .as_str()?
            .strip_prefix("extensions:")?
            .to_string(),
    )
}

/// What a page said about its layout, from its "layout:WxH:ok|bad: ..." report.
fn layout_report(text: &str, from: &str) -> Option<Result<String, String>> {
    if !text.contains(&format!(r#""from":"{from}""#)) {
        return None;
    }
    let value: serde_json::Value = serde_json::from_str(text).ok()?;
    let report = value["text"].as_str()?.strip_prefix("layout:")?;
    Some(match report.split_once(":bad: ") {
        None => Ok(report.trim_end_matches(":ok").to_string()),
        Some((size, problems)) => Err(format!("{size}: {problems}")),
    })
}

fn main() {
    let Some(browser) = browser::find() else {
        eprintln!("browser_check: no chromium found (apt-get install chromium)");
        std::process::exit(2);
    };
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = format!("127.0.0.1:{port}");
    let exe = std::env::current_exe().unwrap();
    let server_bin = exe.parent().unwrap().parent().unwrap().join("rfc6455");
    let mut server = Command::new(server_bin)
        .args(["serve", "--addr", &addr])
        .stderr(Stdio::null())
        .spawn()
        .expect("build the binary first: cargo build --release --bins");
    std::thread::sleep(Duration::from_millis(300));

    let mut observer = blocking::connect(&format!("ws://{addr}/")).expect("connect");
    observer
        .get_ref()
        .set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    observer
        .send_text(r#"{"type":"hello","name":"observer"}"#)
        .unwrap();
    observer
        .send_text(&format!(r#"{{"type":"join","room":"{ROOM}"}}"#))
        .unwrap();

    let page = |me: &str, other: &str| {
        format!("http://{addr}/?autotest={me}&room={ROOM}&say=hello-from-{me}&expect=hello-from-{other}")
    };
    let alice = Page::open(&browser, "alice", LAPTOP, &page("alice", "bob"));
    let bob = Page::open(&browser, "bob", PHONE, &page("bob", "alice"));

    let started = Instant::now();
    let mut saw = (false, false);
    // Each page's layout report: None until it comes.
    let mut layout: [Option<Result<String, String>>; 2] = [None, None];
    // Whether each page's WebSocket negotiated permessage-deflate (`ws.extensions`).
    let mut deflate: [Option<bool>; 2] = [None, None];
    let done = |saw: (bool, bool),
                layout: &[Option<Result<String, String>>; 2],
                deflate: &[Option<bool>; 2]| {
        saw.0 && saw.1 && layout.iter().all(Option::is_some) && deflate.iter().all(Option::is_some)
    };
    while !done(saw, &layout, &deflate) && started.elapsed() < Duration::from_secs(30) {
        match observer.read() {
            Ok(Event::Text(text)) => {
                for (i, who) in ["alice", "bob"].into_iter().enumerate() {
                    if let Some(agreed) = extensions_report(&text, who) {
                        println!("{who}'s page negotiated: {agreed}");
                        deflate[i] = Some(agreed.starts_with("permessage-deflate"));
                    }
                    if let Some(report) = layout_report(&text, who) {
                        match &report {
                            Ok(size) => println!(
                                "{who}'s page at {size}: every control inside the viewport"
                            ),
                            Err(problems) => {
                                eprintln!("{who}'s page: layout problems at {problems}")
                            }
                        }
                        layout[i] = Some(report);
                    }
                }
                if text.contains(r#""text":"saw:hello-from-bob""#)
                    && text.contains(r#""from":"alice""#)
                {
                    saw.0 = true;
                    println!("alice's page saw bob's message");
                }
                if text.contains(r#""text":"saw:hello-from-alice""#)
                    && text.contains(r#""from":"bob""#)
                {
                    saw.1 = true;
                    println!("bob's page saw alice's message");
                }
            }
            Ok(_) => {}
            Err(rfc6455::blocking::Error::Io(_)) => {} // read timeout: poll again
            Err(e) => {
                eprintln!("observer: {e}");
                break;
            }
        }
    }
    drop((alice, bob));
    let elapsed = started.elapsed();

    // The first screen a newcomer sees, at both sizes, kept for people to look at.
    let shots = exe
        .parent()
        .and_then(|p| p.parent())
        .and_then(|p| p.parent())
        .unwrap()
        .join("screenshots");
    std::fs::create_dir_all(&shots).unwrap();
    let mut shots_ok = true;
    for (w, h) in [LAPTOP, PHONE] {
        let out = shots.join(format!("chat-{w}x{h}.png"));
        if screenshot(&browser, (w, h), &format!("http://{addr}/"), &out) {
            println!("screenshot: {}", out.display());
        } else {
            eprintln!("browser_check: no screenshot at {w}x{h}");
            shots_ok = false;
        }
    }
    let _ = server.kill();
    let _ = server.wait();
    for label in ["shot-1280x800", "shot-390x844"] {
        let _ = std::fs::remove_dir_all(profile_dir(label));
        let _ = std::fs::remove_file(profile_dir(label).with_extension("html"));
    }

    let layout_ok = layout.iter().all(|r| matches!(r, Some(Ok(_))));
    let deflate_ok = deflate.iter().all(|d| *d == Some(true));
    if saw.0 && saw.1 && layout_ok && shots_ok && deflate_ok {
        println!(
            "browser_check: two Chromium sessions (1280x800 and 390x844) fit their pages and chatted over permessage-deflate in {:.1} s",
            elapsed.as_secs_f64()
        );
    } else {
        eprintln!(
            "browser_check: FAILED (alice saw bob: {}, bob saw alice: {}, layout: {:?}, screenshots: {}, permessage-deflate: {:?})",
            saw.0, saw.1, layout, shots_ok, deflate
        );
        std::process::exit(1);
    }
}
