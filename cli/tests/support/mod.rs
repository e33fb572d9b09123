//! Helpers shared by the application's integration tests. The TLS certificates and
//! the hostile inputs are the library's test helpers, included from `../tests/support`.
#![allow(dead_code)]

pub mod browser;
pub mod chat;
#[path = "../../../tests/support/hostile.rs"]
pub mod hostile;
pub mod redis;
pub mod sse;
#[path = "../../../tests/support/tls.rs"]
pub mod tls;
pub mod tokens;

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

/// A server process of the `rfc6455` binary (`echo`, `serve`) listening on a port the
/// kernel chose: it binds `127.0.0.1:0` and the address is read from the banner it
/// prints on stderr ("... ws://127.0.0.1:PORT/ ..."). Picking a free port beforehand
/// races with tests running in parallel (a port just freed is handed out again); this
/// does not. Killed on drop; the rest of its stderr is collected meanwhile.
pub struct ServerProcess {
    child: Child,
    /// `127.0.0.1:PORT`.
    pub addr: String,
    log: Arc<Mutex<String>>,
    reader: Option<JoinHandle<()>>,
}

impl ServerProcess {
    /// Runs `binary` with `args` and `--addr 127.0.0.1:0`; waits for its banner.
    pub fn start(binary: &str, args: &[&str]) -> ServerProcess {
        let mut command = Command::new(binary);
        command.args(args).args(["--addr", "127.0.0.1:0"]);
        ServerProcess::spawn(command)
    }

    /// Runs a server command that binds `127.0.0.1:0` by itself (an example, a command
    /// line printed in the docs); waits for its banner.
    pub fn spawn(mut command: Command) -> ServerProcess {
        let mut child = command
            .stderr(Stdio::piped())
            .spawn()
            .expect("start the server");
        let mut stderr = BufReader::new(child.stderr.take().unwrap());
        let mut banner = String::new();
        let addr = loop {
            banner.clear();
            if stderr.read_line(&mut banner).unwrap_or(0) == 0 {
                let _ = child.kill();
                panic!("the server exited before listening");
            }
            let after_scheme = |scheme| banner.split(scheme).nth(1);
            if let Some(rest) = after_scheme("ws://").or_else(|| after_scheme("wss://")) {
                break rest.split('/').next().unwrap().to_string();
            }
        };
        let log = Arc::new(Mutex::new(String::new()));
        let sink = log.clone();
        // Drained all along, so that a chatty server never blocks on a full pipe.
        let reader = std::thread::spawn(move || {
            let mut rest = String::new();
            let _ = stderr.read_to_string(&mut rest);
            sink.lock().unwrap().push_str(&rest);
        });
        ServerProcess {
            child,
            addr,
            log,
            reader: Some(reader),
        }
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Its resident memory now, in KiB (`VmRSS` in /proc).
    pub fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .expect("the server is running");
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmRSS in /proc/PID/status")
    }

    /// Asks for a graceful shutdown (SIGTERM, as `kill` or systemd would) and waits
    /// for the process to exit; true if it exited with success.
    pub fn terminate(&mut self) -> bool {
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        self.child.wait().is_ok_and(|s| s.success())
    }

    /// Kills the server and returns what it printed on stderr after its banner.
    pub fn stop(&mut self) -> String {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(reader) = self.reader.take() {
            let _ = reader.join();
        }
        self.log.lock().unwrap().clone()
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        self.stop();
    }
}
