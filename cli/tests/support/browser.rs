//! Headless Chromium sessions for the browser tests (tests/cluster.rs and
//! examples/browser_check.rs, which includes this file): `chromium` from Debian,
//! installed by tests/setup.sh. Each page runs in its own profile and process group, so
//! that closing it leaves nothing behind.

use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

/// What every session runs with: headless, no sandbox (CI runs as root), nothing that
/// would call out beyond loopback.
pub const FLAGS: [&str; 9] = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
];

/// The browser's command, if one is installed.
pub fn find() -> Option<String> {
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

/// The profile directory of the session `label` of this process.
pub fn profile_dir(label: &str) -> PathBuf {
    std::env::temp_dir().join(format!("rfc6455-browser-{}-{label}", std::process::id()))
}

/// One page in its own headless browser; closed (the whole process group killed, the
/// profile removed) on drop.
pub struct Page {
    child: Child,
    label: String,
}

impl Page {
    /// Opens `url` in a new session. The page runs in a frame of exactly the size
    /// asked for: a headless window has a minimum width (500 px) and browser chrome
    /// that a frame does not, so a frame is how a 390-px phone viewport is had.
    /// `label` names the session; it must be unique among this process's open pages.
    pub fn open(browser: &str, label: &str, size: (u32, u32), url: &str) -> Page {
        Page::open_with(browser, label, size, url, &[])
    }

    /// [`Page::open`] with more command-line flags for the browser.
    pub fn open_with(
        browser: &str,
        label: &str,
        (w, h): (u32, u32),
        url: &str,
        flags: &[&str],
    ) -> Page {
        let frame = profile_dir(label).with_extension("html");
        std::fs::write(
            &frame,
            format!(
                "<body style='margin:0'><iframe src='{url}' \
                 style='border:0;width:{w}px;height:{h}px'></iframe></body>"
            ),
        )
        .unwrap();
        Page::launch(
            browser,
            label,
            &format!("file://{}", frame.display()),
            &[flags, &[&format!("--window-size={},{}", w + 100, h + 200)]].concat(),
        )
    }

    /// Opens `url` as the top-level page (no frame): the page is then first-party
    /// to its site, so that its cookies go with its requests (`SameSite`).
    pub fn open_top(browser: &str, label: &str, url: &str) -> Page {
        Page::launch(browser, label, url, &["--window-size=900,800"])
    }

    fn launch(browser: &str, label: &str, url: &str, flags: &[&str]) -> Page {
        let child = Command::new(browser)
            .args(FLAGS)
            .args(flags)
            .arg(format!("--user-data-dir={}", profile_dir(label).display()))
            .arg(url)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .expect("start the browser (tests/setup.sh installs chromium)");
        Page {
            child,
            label: label.to_string(),
        }
    }
}

impl Drop for Page {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-9", "--", &format!("-{}", self.child.id())])
            .status();
        let _ = self.child.wait();
        // Helpers that left the group still name the profile on their command line.
        let profile = profile_dir(&self.label);
        let _ = Command::new("pkill")
            .args([
                "-9",
                "-f",
                "--",
                &format!("--user-data-dir={}( |$)", profile.display()),
            ])
            .status();
        let _ = std::fs::remove_dir_all(&profile);
        let _ = std::fs::remove_file(profile.with_extension("html"));
    }
}
