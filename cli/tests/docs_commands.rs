//! Every command printed in README.md and docs/*.md, so that none rots: each command line
//! of a code block is found, classified, and run the way the page says to run it —
//! against servers on ports the kernel chose, in a temporary directory for files it
//! makes. A printed command that no rule here knows fails the test, so a new command in
//! the docs needs a way to be run here first.
//!
//! What "run" means per kind:
//! - `cargo run -- decode|encode|accept ...`: run; exit 0 and output.
//! - `cargo run -- serve|echo ...` and the examples' servers: started (address moved to
//!   `127.0.0.1:0`, certificates from the page's own `openssl` command), then a real
//!   WebSocket round trip (or, for `serve`, the page) through the banner's address.
//! - `cargo run -- client ...`, `tap ...`, `curl ...`: run against a server started for
//!   them, their output checked.
//! - The long scripts (`bash tests/run.sh`, `bash autobahn/run.sh ...`, `bash
//!   fuzz/...`) and the cluster recipe run for 2 to 40 minutes: for each, the step of CI
//!   or the test that runs it is named and checked to run it.

mod support;

use rfc6455::blocking;
use rfc6455::Event;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use support::ServerProcess;

const BIN: &str = env!("CARGO_BIN_EXE_rfc6455");

/// The workspace root (README.md, docs/).
fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// One command as printed: where, and its text (continuation lines joined, a `$ `
/// prompt and a trailing `# comment` removed).
#[derive(Debug, Clone)]
struct Printed {
    place: String,
    text: String,
    /// What the page shows the command printing: the lines after a `$ ` prompt, up to
    /// the next prompt or the end of the block (`...` stands for lines left out).
    shown: Vec<String>,
}

/// The programs a printed line may start with; other lines of a code block are output
/// or file contents.
const PROGRAMS: &[&str] = &[
    "cargo",
    "bash",
    "curl",
    "openssl",
    "redis-server",
    "redis-cli",
    "haproxy",
    "for",
    "python3",
    "node",
    "docker",
    "target/release/rfc6455",
    "target/release/examples/",
];

/// Whether a line of a code block starts a command (and so must have a rule below).
fn is_command(line: &str) -> bool {
    PROGRAMS.iter().any(|p| line.starts_with(p))
        || line.split_whitespace().next().is_some_and(|w| {
            // An environment assignment before a command: `AUTOBAHN_ALL=1 bash ...`.
            w.contains('=') && w.chars().next().is_some_and(|c| c.is_ascii_uppercase())
        })
}

fn printed_commands() -> Vec<Printed> {
    let mut pages = vec![root().join("README.md")];
    let mut docs: Vec<PathBuf> = std::fs::read_dir(root().join("docs"))
        .expect("docs/")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .collect();
    docs.sort();
    pages.extend(docs);
    let mut commands: Vec<Printed> = Vec::new();
    for page in pages {
        let text = std::fs::read_to_string(&page).unwrap();
        let name = page.strip_prefix(root()).unwrap().display().to_string();
        let mut fence: Option<String> = None;
        let mut pending: Option<(usize, String)> = None;
        // The index in `commands` of the last `$ ` command of this block: the lines
        // after it are its output.
        let mut prompted: Option<usize> = None;
        for (n, line) in text.lines().enumerate() {
            if let Some(info) = line.strip_prefix("```") {
                fence = match fence {
                    None => Some(info.trim().to_string()),
                    Some(_) => None,
                };
                prompted = None;
                continue;
            }
            let Some(lang) = &fence else { continue };
            if lang.starts_with("rust") || lang == "toml" || lang == "json" {
                continue; // doctests and file contents
            }
            let raw = line;
            let line = line.trim();
            let (start, joined) = match pending.take() {
                Some((start, before)) => (start, format!("{before} {line}")),
                None => {
                    let prompt = line.starts_with("$ ");
                    let line = line.strip_prefix("$ ").unwrap_or(line);
                    if !prompt && !is_command(line) {
                        if let Some(i) = prompted {
                            commands[i].shown.push(raw.to_string());
                            continue;
                        }
                        // In a shell block every line is a command, a comment, or the
                        // end of a loop: nothing may hide there unrun.
                        let ignorable = line.is_empty() || line.starts_with('#') || line == "done";
                        assert!(
                            lang != "sh" || ignorable,
                            "{name}:{}: a shell line no rule runs: {line}",
                            n + 1
                        );
                        continue;
                    }
                    if prompt {
                        prompted = Some(commands.len());
                    }
                    (n + 1, line.to_string())
                }
            };
            if let Some(open) = joined.strip_suffix('\\') {
                pending = Some((start, open.trim_end().to_string()));
                continue;
            }
            let text = match joined.find("  #") {
                Some(at) => joined[..at].trim_end().to_string(),
                None => joined,
            };
            commands.push(Printed {
                place: format!("{name}:{start}"),
                text,
                shown: Vec::new(),
            });
        }
    }
    commands
}

/// What `cargo run [-q] [--release] [--example X] [--features F] -- ARGS` runs: the
/// executable and ARGS.
fn cargo_run(command: &str) -> (PathBuf, Vec<String>) {
    // A trailing `&` runs it in the background (the cluster recipe): not an argument.
    let command = command.strip_suffix('&').unwrap_or(command).trim_end();
    let (cargo, args) = command
        .split_once(" -- ")
        .unwrap_or_else(|| panic!("no `--` in {command}"));
    let words: Vec<&str> = cargo.split_whitespace().collect();
    let exe = match words.iter().position(|w| *w == "--example") {
        // The root package's examples, built by `cargo test --workspace` next to the bin.
        Some(i) => {
            // The features the example requires must be on the printed command line,
            // or cargo refuses to run it.
            let manifest = std::fs::read_to_string(root().join("Cargo.toml")).unwrap();
            let entry = format!("name = \"{}\"\nrequired-features = [", words[i + 1]);
            if let Some(at) = manifest.find(&entry) {
                let list = &manifest[at + entry.len()..];
                let list = &list[..list.find(']').unwrap()];
                let given = words
                    .iter()
                    .position(|w| *w == "--features")
                    .map_or("", |f| words[f + 1]);
                for feature in list.split(',').map(|f| f.trim().trim_matches('"')) {
                    assert!(
                        given.split(',').any(|g| g == feature),
                        "`{command}` lacks --features {feature}"
                    );
                }
            }
            let path = Path::new(BIN)
                .parent()
                .unwrap()
                .join("examples")
                .join(words[i + 1]);
            assert!(
                path.exists(),
                "{} is not built: run the tests with `cargo test --workspace --all-features`",
                path.display()
            );
            path
        }
        None => PathBuf::from(BIN),
    };
    let args = args.split_whitespace().map(str::to_string).collect();
    (exe, args)
}

/// Replaces an address argument (`--addr X`, `--listen X`, or a bare `HOST:PORT`) with
/// `127.0.0.1:0`, adding `--addr 127.0.0.1:0` to `serve`/`echo` when none is given.
fn on_any_port(mut args: Vec<String>) -> Vec<String> {
    let mut moved = false;
    for i in 0..args.len() {
        let is_addr = args[i].starts_with("127.0.0.1:") && !args[i].contains('/');
        let after_flag = i > 0 && (args[i - 1] == "--addr" || args[i - 1] == "--listen");
        if is_addr && (after_flag || i == 0) {
            args[i] = "127.0.0.1:0".into();
            moved = true;
        }
    }
    if !moved && matches!(args.first().map(String::as_str), Some("serve" | "echo")) {
        args.extend(["--addr".into(), "127.0.0.1:0".into()]);
    }
    args
}

/// The page's TLS files: made by its own `openssl` command when it has run.
struct Workdir {
    dir: PathBuf,
}

impl Workdir {
    fn new() -> Workdir {
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("docs-commands-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        Workdir { dir }
    }

    fn has_certificate(&self) -> bool {
        self.dir.join("cert.pem").exists() && self.dir.join("key.pem").exists()
    }
}

/// Runs `exe args` in `dir` with `stdin`, at most 30 s; returns (success, stdout, stderr).
fn run(exe: &Path, args: &[String], dir: &Path, stdin: &str) -> (bool, String, String) {
    let mut child = Command::new(exe)
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{}: {e}", exe.display()));
    let mut input = child.stdin.take().unwrap();
    let stdin = stdin.to_string();
    // Written slowly enough for a client to send each line after connecting.
    let writer = std::thread::spawn(move || {
        for line in stdin.lines() {
            std::thread::sleep(Duration::from_millis(300));
            let _ = writeln!(input, "{line}");
        }
        std::thread::sleep(Duration::from_millis(500));
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("{} {args:?} ran for 30 s", exe.display());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    writer.join().unwrap();
    let output = child.wait_with_output().unwrap();
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// A server from a printed command, started in the work directory.
fn start(exe: &Path, args: &[String], work: &Workdir) -> ServerProcess {
    let mut command = Command::new(exe);
    command
        .args(args)
        .current_dir(&work.dir)
        .stdout(Stdio::null());
    ServerProcess::spawn(command)
}

/// A WebSocket round trip to a server started from the docs (`wss://` with the page's
/// certificate as the CA).
fn echo_round_trip(url: &str, work: &Workdir) {
    let mut ws = if url.starts_with("wss://") {
        let ca = rfc6455::tls::client_config_with_ca(&work.dir.join("cert.pem")).unwrap();
        blocking::connect_tls(url, ca).unwrap()
    } else {
        blocking::connect(url).unwrap()
    };
    ws.send_text("printed in the docs").unwrap();
    assert_eq!(
        ws.read().unwrap(),
        Event::Text("printed in the docs".into()),
        "{url}"
    );
}

/// An HTTP GET over plain TCP; the whole response.
fn http_get(addr: &str, path: &str) -> String {
    use std::io::Read;
    let mut tcp = std::net::TcpStream::connect(addr).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        tcp,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = Vec::new();
    let _ = tcp.read_to_end(&mut response);
    String::from_utf8_lossy(&response).into_owned()
}

/// Checks one `cargo run ...` command.
fn check_cargo_run(printed: &Printed, work: &Workdir) {
    let (exe, args) = cargo_run(&printed.text);
    let place = &printed.place;
    let sub = args.first().map(String::as_str).unwrap_or("");
    let is_example = exe != Path::new(BIN);
    match sub {
        "decode" | "encode" | "accept" => {
            let (ok, out, err) = run(&exe, &args, &work.dir, "");
            assert!(
                ok && !out.is_empty(),
                "{place}: {}\n{out}{err}",
                printed.text
            );
            shows(printed, &out);
        }
        "serve" | "echo" => {
            if args.iter().any(|a| a == "--tls-cert") {
                assert!(
                    work.has_certificate(),
                    "{place}: the page's openssl command comes first"
                );
            }
            if args
                .iter()
                .any(|a| a == "--redis" || a == "--redis-sentinel")
            {
                return check_cluster_recipe(printed);
            }
            let server = start(&exe, &on_any_port(args.clone()), work);
            let tls = args.iter().any(|a| a == "--tls-cert");
            let url = match tls {
                // The certificate's name.
                true => format!("wss://{}/", server.addr.replace("127.0.0.1", "localhost")),
                false => format!("ws://{}/", server.addr),
            };
            if sub == "echo" {
                echo_round_trip(&url, work);
            } else if !tls {
                let page = http_get(&server.addr, "/");
                assert!(page.starts_with("HTTP/1.1 200 "), "{place}: {page:.200}");
            } else {
                // serve over TLS: its page through a wss-capable client is in
                // tls_serve.rs; here the WebSocket endpoint answers over TLS.
                let ca = rfc6455::tls::client_config_with_ca(&work.dir.join("cert.pem")).unwrap();
                blocking::connect_tls(&url, ca).expect("serve over TLS accepts wss://");
            }
        }
        "client" => {
            let url = args.get(1).expect("client URL").clone();
            let tls = url.starts_with("wss://");
            let mut server_args = vec!["echo".to_string()];
            if tls {
                assert!(
                    work.has_certificate(),
                    "{place}: the page's openssl command comes first"
                );
                server_args
                    .extend(["--tls-cert", "cert.pem", "--tls-key", "key.pem"].map(String::from));
            }
            let server = start(Path::new(BIN), &on_any_port(server_args), work);
            let port = server.addr.rsplit(':').next().unwrap();
            let args: Vec<String> = args
                .iter()
                .map(|a| a.replace(":9001", &format!(":{port}")))
                .collect();
            // What the page's transcript types: a message, then a normal close.
            let (ok, out, err) = run(&exe, &args, &work.dir, "Hello\n/close 1000\n");
            assert!(ok, "{place}: {}\n{out}{err}", printed.text);
            assert!(out.contains("Hello"), "{place}: the echo\n{out}{err}");
            shows(printed, &format!("{out}{err}"));
        }
        "tap" => {
            let upstream = start(Path::new(BIN), &on_any_port(vec!["echo".into()]), work);
            let args: Vec<String> = on_any_port(args.clone())
                .iter()
                .map(|a| a.replace("127.0.0.1:9001", &upstream.addr))
                .collect();
            let tap = start(&exe, &args, work);
            echo_round_trip(&format!("ws://{}/", tap.addr), work);
        }
        // The examples' servers: an address as their only argument.
        _ if is_example => {
            let server = start(&exe, &on_any_port(args.clone()), work);
            echo_round_trip(&format!("ws://{}/", server.addr), work);
        }
        _ => panic!("{place}: no rule runs `{}`", printed.text),
    }
}

/// The output the page shows for a command, against what it printed: every shown line
/// (but `...`) in order, masking keys (random per frame) aside.
fn shows(printed: &Printed, output: &str) {
    let masked = |line: &str| {
        let mut line = line.trim_end().to_string();
        let mut from = 0;
        while let Some(at) = line[from..].find("mask=").map(|at| from + at) {
            let end = (at + 13).min(line.len());
            line.replace_range(at..end, "mask=xxxxxxxx");
            from = at + 13;
        }
        line
    };
    let printed_lines: Vec<String> = output.lines().map(masked).collect();
    let mut from = 0;
    for shown in printed.shown.iter().filter(|l| l.trim() != "...") {
        let shown = masked(shown);
        match printed_lines[from..].iter().position(|l| *l == shown) {
            Some(i) => from += i + 1,
            None => panic!(
                "{}: the page shows a line the command does not print (in this order):\n{shown}\n--- printed:\n{output}",
                printed.place
            ),
        }
    }
}

/// The cluster recipes of docs/cluster.md (Redis, Redis Sentinel or a Redis Cluster,
/// three nodes, HAProxy with deploy/haproxy.cfg) are what cli/tests/cluster.rs and
/// cli/tests/redis_cluster.rs run, with real processes (the servers made as
/// tests/support/redis.rs makes them).
fn check_cluster_recipe(printed: &Printed) {
    let cluster = std::fs::read_to_string(root().join("cli/tests/cluster.rs")).unwrap()
        + &std::fs::read_to_string(root().join("cli/tests/redis_cluster.rs")).unwrap()
        + &std::fs::read_to_string(root().join("cli/tests/support/redis.rs")).unwrap();
    for needle in [
        "\"--redis\"",
        "\"--redis-cluster\"",
        "\"--redis-sentinel\"",
        "\"--sentinel\"",
        "\"--replicaof\"",
        "RedisSentinel::start()",
        "\"--cluster-enabled\"",
        ".arg(\"create\")",
        "deploy/haproxy.cfg",
        "redis-server",
        "redis-cli",
        "haproxy",
    ] {
        assert!(
            cluster.contains(needle),
            "{}: cli/tests/cluster.rs no longer runs the recipe ({needle})",
            printed.place
        );
    }
    // The recipe's own ports and flags: HAProxy's front on 8080 and the three nodes.
    let haproxy = std::fs::read_to_string(root().join("deploy/haproxy.cfg")).unwrap();
    if printed.text.starts_with("haproxy") {
        assert!(
            haproxy.contains(":8080"),
            "deploy/haproxy.cfg listens on 8080"
        );
        for node in ["127.0.0.1:9001", "127.0.0.1:9002", "127.0.0.1:9003"] {
            assert!(haproxy.contains(node), "deploy/haproxy.cfg lists {node}");
        }
    }
    if printed.text.starts_with("cargo run") {
        // The node's flags parse: pointed at a port where no Redis listens, it must
        // fail on Redis, not on its command line (clap's usage error is exit code 2).
        let (_, args) = cargo_run(&printed.text);
        let args: Vec<String> = args
            .iter()
            .map(|a| {
                a.replace("$port", "0")
                    .replace("127.0.0.1:6379", "127.0.0.1:1")
                    .replace("127.0.0.1:26379", "127.0.0.1:1")
                    .replace("127.0.0.1:9001", "127.0.0.1:0")
                    .replace("127.0.0.1:700", "127.0.0.1:")
            })
            .collect();
        let mut node = Command::new(BIN)
            .args(&args)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // A node keeps serving while Redis is away: still running after 2 s means its
        // command line was taken.
        let deadline = Instant::now() + Duration::from_secs(2);
        while node.try_wait().unwrap().is_none() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = node.kill();
        let output = node.wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&output.stderr);
        assert_ne!(output.status.code(), Some(2), "{}: {err}", printed.place);
        assert!(!err.contains("Usage:"), "{}: {err}", printed.place);
    }
}

/// Scripts that run for minutes: each is run by CI (`.ci/run` → `tests/run.sh`), or is
/// a variant of a CI step whose options the script still takes.
fn check_script(printed: &Printed) {
    let ci = std::fs::read_to_string(root().join("tests/run.sh")).unwrap();
    let words: Vec<&str> = printed.text.split_whitespace().collect();
    let script = words[1];
    let path = root().join(script);
    assert!(path.exists(), "{}: {script} does not exist", printed.place);
    let syntax = Command::new("bash").arg("-n").arg(&path).status().unwrap();
    assert!(
        syntax.success(),
        "{}: {script} does not parse",
        printed.place
    );
    let source = std::fs::read_to_string(&path).unwrap();
    match script {
        "tests/run.sh" => {
            let entry = std::fs::read_to_string(root().join(".ci/run")).unwrap();
            assert!(
                entry.contains("bash tests/run.sh"),
                ".ci/run runs tests/run.sh"
            );
        }
        "autobahn/run.sh" => {
            assert!(
                ci.contains("bash autobahn/run.sh all"),
                "CI runs every Autobahn mode"
            );
            assert!(source.contains("server|client|all)"), "{}", printed.place);
        }
        "fuzz/run.sh" => {
            assert!(ci.contains("bash fuzz/run.sh"), "CI runs every fuzz target");
            for option in words[2..].iter().filter(|w| w.starts_with("--")) {
                assert!(source.contains(option), "{}: {option}", printed.place);
            }
            for target in words[2..]
                .iter()
                .filter(|w| !w.starts_with('-') && w.parse::<u32>().is_err())
            {
                let target = root()
                    .join("fuzz/fuzz_targets")
                    .join(format!("{target}.rs"));
                assert!(
                    target.exists(),
                    "{}: no fuzz target {}",
                    printed.place,
                    target.display()
                );
            }
        }
        "fuzz/coverage.sh" => {
            for option in words[2..].iter().filter(|w| w.starts_with("--")) {
                assert!(source.contains(option), "{}: {option}", printed.place);
            }
        }
        _ => panic!("{}: no rule runs `{}`", printed.place, printed.text),
    }
}

/// `curl` against `serve`: the SSE stream and the publish of docs/rooms-server.md.
fn check_curl(printed: &Printed, work: &Workdir) {
    let server = start(Path::new(BIN), &on_any_port(vec!["serve".into()]), work);
    let mut line = printed.text.replace("127.0.0.1:9001", &server.addr);
    let stream = line.contains("text/event-stream");
    if stream {
        line = line.replacen("curl ", "curl --max-time 2 ", 1); // a stream does not end
    }
    let output = Command::new("bash").arg("-c").arg(&line).output().unwrap();
    let out = String::from_utf8_lossy(&output.stdout);
    if stream {
        assert!(out.starts_with("retry: 2000\n"), "{}: {out}", printed.place);
        assert!(out.contains("event: presence"), "{}: {out}", printed.place);
    } else {
        assert!(output.status.success(), "{}: {out}", printed.place);
        assert_eq!(out.trim(), "{\"seq\":1}", "{}", printed.place);
    }
}

#[test]
fn every_command_printed_in_the_readme_and_docs_runs() {
    let commands = printed_commands();
    assert!(
        commands.len() >= 30,
        "the commands were found: {commands:#?}"
    );
    let work = Workdir::new();
    let mut checked = 0;
    for printed in &commands {
        let first = printed.text.split_whitespace().next().unwrap();
        match first {
            "cargo" if printed.text.starts_with("cargo run") => check_cargo_run(printed, &work),
            "bash" => check_script(printed),
            "curl" => check_curl(printed, &work),
            "openssl" => {
                let status = Command::new("bash")
                    .arg("-c")
                    .arg(&printed.text)
                    .current_dir(&work.dir)
                    .stderr(Stdio::null())
                    .status()
                    .unwrap();
                assert!(
                    status.success() && work.has_certificate(),
                    "{}",
                    printed.place
                );
            }
            "redis-server" | "redis-cli" | "haproxy" | "for" => check_cluster_recipe(printed),
            _ => panic!("{}: no rule runs `{}`", printed.place, printed.text),
        }
        checked += 1;
    }
    assert_eq!(checked, commands.len());
}
