//! The chat page in real browsers: starts `rfc6455 serve`, opens the page in two
//! headless Chromium sessions that each join one room and say something, and watches
//! the room (as a third, WebSocket client) until each browser reports it saw the
//! other's message. Exits non-zero if that does not happen within 30 s — when the page,
//! the server or the browser's WebSocket breaks.
//!
//! ```text
//! cargo build --release --bins --examples && target/release/examples/browser_check
//! ```
//!
//! Needs `chromium` (Debian: `apt-get install chromium`); `.ci/run` installs it.

use rfc6455::blocking;
use rfc6455::Event;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const ROOM: &str = "browser-test";

fn find_browser() -> Option<String> {
    ["chromium", "chromium-browser", "google-chrome"]
        .iter()
        .find(|name| {
            Command::new("sh")
                .args(["-c", &format!("command -v {name}")])
                .stdout(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        })
        .map(|name| name.to_string())
}

/// A headless browser session in its own process group (its renderers too), so that
/// killing the group leaves nothing behind.
fn open_page(browser: &str, label: &str, url: &str) -> Child {
    let profile =
        std::env::temp_dir().join(format!("rfc6455-browser-{}-{label}", std::process::id()));
    Command::new(browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(url)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .expect("start the browser")
}

fn kill_group(child: &mut Child) {
    let _ = Command::new("kill")
        .args(["-9", "--", &format!("-{}", child.id())])
        .status();
    let _ = child.wait();
    // Helpers that left the group still name the profile directory on their command line.
    let _ = Command::new("pkill")
        .args([
            "-9",
            "-f",
            &format!("rfc6455-browser-{}-", std::process::id()),
        ])
        .status();
}

fn main() {
    let Some(browser) = find_browser() else {
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
    let mut alice = open_page(&browser, "alice", &page("alice", "bob"));
    let mut bob = open_page(&browser, "bob", &page("bob", "alice"));

    let started = Instant::now();
    let mut saw = (false, false);
    while !(saw.0 && saw.1) && started.elapsed() < Duration::from_secs(30) {
        match observer.read() {
            Ok(Event::Text(text)) => {
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
    kill_group(&mut alice);
    kill_group(&mut bob);
    let _ = server.kill();
    let _ = server.wait();
    if saw.0 && saw.1 {
        println!(
            "browser_check: two Chromium sessions chatted through the page in {:.1} s",
            started.elapsed().as_secs_f64()
        );
    } else {
        eprintln!(
            "browser_check: FAILED (alice saw bob: {}, bob saw alice: {})",
            saw.0, saw.1
        );
        std::process::exit(1);
    }
}
