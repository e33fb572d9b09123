//! A real `redis-server` for the tests (installed by tests/setup.sh): on a free
//! loopback port, without persistence, stopped by PID on drop.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct RedisServer {
    child: Option<Child>,
    pub port: u16,
}

/// A port nobody listens on now (the kernel's pick; released before use).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl RedisServer {
    pub fn start() -> RedisServer {
        let mut redis = RedisServer {
            child: None,
            port: free_port(),
        };
        redis.restart();
        redis
    }

    /// `redis://127.0.0.1:PORT/`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// Starts it (again, on the same port, empty) and waits until it answers PING.
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "already running");
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args([
                "--save",
                "",
                "--appendonly",
                "no",
                "--protected-mode",
                "yes",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server (tests/setup.sh installs it)");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.command("PING") != "+PONG" {
            assert!(Instant::now() < deadline, "redis-server did not answer");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Kills it (SIGKILL): every connection to it breaks at once.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// One inline command; its reply's first line (empty if it cannot connect).
    pub fn command(&self, line: &str) -> String {
        let Ok(mut stream) = TcpStream::connect(("127.0.0.1", self.port)) else {
            return String::new();
        };
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        if write!(stream, "{line}\r\n").is_err() {
            return String::new();
        }
        let mut buf = [0u8; 512];
        let n = stream.read(&mut buf).unwrap_or(0);
        String::from_utf8_lossy(&buf[..n])
            .lines()
            .next()
            .unwrap_or("")
            .to_string()
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// What a node needs to share rooms: `--redis URL` or `--redis-cluster URLS`.
pub trait Shared {
    fn node_args(&self) -> Vec<String>;
}

impl<T: Shared + ?Sized> Shared for &T {
    fn node_args(&self) -> Vec<String> {
        (**self).node_args()
    }
}

impl Shared for RedisServer {
    fn node_args(&self) -> Vec<String> {
        vec!["--redis".into(), self.url()]
    }
}

/// A real Redis Cluster (Redis 7: sharded pub/sub): `primaries` primaries with
/// `replicas` replicas each, every node a `redis-server` on a free loopback port
/// (and its cluster bus on that port + 10000), made with `redis-cli --cluster
/// create`, stopped by PID on drop.
pub struct RedisCluster {
    pub nodes: Vec<RedisServer>,
    dir: std::path::PathBuf,
}

/// A port free on loopback, whose cluster bus port (+10000) is free too.
fn free_cluster_port() -> u16 {
    loop {
        let port = 20000 + (free_port() % 20000);
        let free = |p: u16| TcpListener::bind(("127.0.0.1", p)).is_ok();
        if free(port) && free(port + 10000) {
            return port;
        }
    }
}

impl RedisCluster {
    pub fn start(primaries: usize, replicas: usize) -> RedisCluster {
        let dir = std::env::temp_dir().join(format!(
            "rfc6455-cluster-{}-{}",
            std::process::id(),
            free_port()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let mut nodes = Vec::new();
        for _ in 0..primaries * (1 + replicas) {
            let port = free_cluster_port();
            nodes.push(RedisServer::spawn(
                &dir,
                port,
                &[
                    "--cluster-enabled",
                    "yes",
                    "--cluster-config-file",
                    &format!("nodes-{port}.conf"),
                    "--cluster-node-timeout",
                    "1000",
                ],
            ));
        }
        let mut create = Command::new("redis-cli");
        create.arg("--cluster").arg("create");
        for node in &nodes {
            create.arg(format!("127.0.0.1:{}", node.port));
        }
        let out = create
            .args(["--cluster-replicas", &replicas.to_string(), "--cluster-yes"])
            .stdin(Stdio::null())
            .output()
            .expect("redis-cli (tests/setup.sh installs it)");
        assert!(
            out.status.success(),
            "redis-cli --cluster create: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        let cluster = RedisCluster { nodes, dir };
        cluster.wait_until_ok();
        cluster
    }

    /// Waits until every running node says `cluster_state:ok`, and every replica
    /// has synced with its primary (only then can it be promoted).
    pub fn wait_until_ok(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let ok = self.nodes.iter().filter(|n| n.child.is_some()).all(|n| {
                let replication = n.reply("INFO replication");
                n.reply("CLUSTER INFO").contains("cluster_state:ok")
                    && (replication.contains("role:master")
                        || replication.contains("master_link_status:up"))
            });
            if ok {
                return;
            }
            assert!(Instant::now() < deadline, "the cluster did not become ok");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The running node that is primary for `key`'s slot.
    pub fn primary_of(&self, key: &str) -> usize {
        let slot: u16 = self.nodes[0]
            .command(&format!("CLUSTER KEYSLOT {key}"))
            .trim_start_matches(':')
            .parse()
            .unwrap();
        let nodes = self.nodes[0].reply("CLUSTER NODES");
        let line = nodes
            .lines()
            .find(|line| {
                line.contains("master") && !line.contains("fail") && {
                    line.split(' ').skip(8).any(|range| {
                        let (a, b) = range.split_once('-').unwrap_or((range, range));
                        match (a.parse::<u16>(), b.parse::<u16>()) {
                            (Ok(a), Ok(b)) => (a..=b).contains(&slot),
                            _ => false,
                        }
                    })
                }
            })
            .expect("a primary for the slot");
        let port: u16 = line
            .split(' ')
            .nth(1)
            .unwrap()
            .split(['@', ':'])
            .nth(1)
            .unwrap()
            .parse()
            .unwrap();
        self.nodes.iter().position(|n| n.port == port).unwrap()
    }
}

impl RedisCluster {
    /// `redis-cli -p PORT ARGS...` against node `i`: its output.
    pub fn cli(&self, i: usize, args: &[&str]) -> String {
        let out = Command::new("redis-cli")
            .args(["-p", &self.nodes[i].port.to_string()])
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("redis-cli (tests/setup.sh installs it)");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Moves `key`'s slot, with its keys, from its primary to node `to` (a primary),
    /// as `redis-cli --cluster reshard` does for one slot: IMPORTING and MIGRATING,
    /// MIGRATE the keys in batches, then give every primary the slot's new owner.
    pub fn move_slot_of(&self, key: &str, to: usize) {
        let from = self.primary_of(key);
        let slot = self.cli(0, &["CLUSTER", "KEYSLOT", key]).trim().to_string();
        let id = |i: usize| self.cli(i, &["CLUSTER", "MYID"]).trim().to_string();
        let (from_id, to_id) = (id(from), id(to));
        let to_port = self.nodes[to].port.to_string();
        self.cli(to, &["CLUSTER", "SETSLOT", &slot, "IMPORTING", &from_id]);
        self.cli(from, &["CLUSTER", "SETSLOT", &slot, "MIGRATING", &to_id]);
        loop {
            let keys = self.cli(from, &["CLUSTER", "GETKEYSINSLOT", &slot, "100"]);
            let keys: Vec<&str> = keys.lines().filter(|k| !k.is_empty()).collect();
            if keys.is_empty() {
                break;
            }
            let mut args = vec!["MIGRATE", "127.0.0.1", &to_port, "", "0", "5000", "KEYS"];
            args.extend(keys);
            let answer = self.cli(from, &args);
            assert!(answer.trim() == "OK", "MIGRATE: {answer}");
        }
        for i in 0..self.nodes.len() {
            if self.nodes[i].child.is_some() {
                self.cli(i, &["CLUSTER", "SETSLOT", &slot, "NODE", &to_id]);
            }
        }
    }
}

impl RedisServer {
    /// `redis-server` on `port` in `dir` with `args` after the common ones (loopback,
    /// no persistence), once it answers PING.
    fn spawn(dir: &Path, port: u16, args: &[&str]) -> RedisServer {
        let child = Command::new("redis-server")
            .current_dir(dir)
            .args(args)
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            // A replica that never synced cannot be promoted: sync at once.
            .args(["--repl-diskless-sync-delay", "0"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server (tests/setup.sh installs it)");
        let server = RedisServer {
            child: Some(child),
            port,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while server.command("PING") != "+PONG" {
            assert!(Instant::now() < deadline, "redis-server did not answer");
            std::thread::sleep(Duration::from_millis(20));
        }
        server
    }
}

/// A primary and its replica watched by a Redis Sentinel as `mymaster` (quorum 1,
/// down after 1 s), each a `redis-server` on a free loopback port, stopped by PID on
/// drop. `servers[0]` is the primary at first.
pub struct RedisSentinel {
    pub servers: Vec<RedisServer>,
    sentinel: RedisServer,
    dir: PathBuf,
}

impl RedisSentinel {
    pub fn start() -> RedisSentinel {
        let dir = std::env::temp_dir().join(format!(
            "rfc6455-sentinel-{}-{}",
            std::process::id(),
            free_port()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let primary = RedisServer::spawn(&dir, free_port(), &[]);
        let of = primary.port.to_string();
        let replica = RedisServer::spawn(&dir, free_port(), &["--replicaof", "127.0.0.1", &of]);
        assert!(
            eventually(Duration::from_secs(10), || replica
                .reply("INFO replication")
                .contains("master_link_status:up")),
            "the replica did not sync"
        );
        // Sentinel rewrites its configuration file: one of its own.
        let port = free_port();
        let config = dir.join(format!("sentinel-{port}.conf"));
        std::fs::write(
            &config,
            format!(
                "port {port}\nbind 127.0.0.1\n\
                 sentinel monitor mymaster 127.0.0.1 {of} 1\n\
                 sentinel down-after-milliseconds mymaster 1000\n\
                 sentinel failover-timeout mymaster 2000\n"
            ),
        )
        .unwrap();
        let child = Command::new("redis-server")
            .arg(&config)
            .arg("--sentinel")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server (tests/setup.sh installs it)");
        let sentinel = RedisServer {
            child: Some(child),
            port,
        };
        // It knows the replica (from the primary's INFO), connected and in sync,
        // before a failover is asked of it: else it would have no replica to promote.
        assert!(
            eventually(Duration::from_secs(15), || {
                let replicas = sentinel.reply("SENTINEL REPLICAS mymaster");
                replicas.contains(&replica.port.to_string())
                    && replicas.contains("master-link-status\r\n$2\r\nok")
                    && !replicas.contains("disconnected")
            }),
            "the sentinel did not find the replica in sync"
        );
        RedisSentinel {
            servers: vec![primary, replica],
            sentinel,
            dir,
        }
    }
}

impl Shared for RedisSentinel {
    fn node_args(&self) -> Vec<String> {
        vec![
            "--redis-sentinel".into(),
            format!("redis://127.0.0.1:{}/", self.sentinel.port),
        ]
    }
}

impl Drop for RedisSentinel {
    fn drop(&mut self) {
        self.sentinel.kill();
        for server in &mut self.servers {
            server.kill();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Shared for RedisCluster {
    fn node_args(&self) -> Vec<String> {
        let seeds: Vec<String> = self
            .nodes
            .iter()
            .map(|n| format!("redis://127.0.0.1:{}/", n.port))
            .collect();
        vec!["--redis-cluster".into(), seeds.join(",")]
    }
}

impl Drop for RedisCluster {
    fn drop(&mut self) {
        for node in &mut self.nodes {
            node.kill();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl RedisServer {
    /// One inline command's whole reply (a bulk string's text), up to 64 KiB.
    pub fn reply(&self, line: &str) -> String {
        let Ok(mut stream) = TcpStream::connect(("127.0.0.1", self.port)) else {
            return String::new();
        };
        stream
            .set_read_timeout(Some(Duration::from_millis(500)))
            .unwrap();
        if write!(stream, "{line}\r\n").is_err() {
            return String::new();
        }
        let mut all = Vec::new();
        let mut buf = [0u8; 8192];
        while let Ok(n) = stream.read(&mut buf) {
            if n == 0 || all.len() > 65536 {
                break;
            }
            all.extend_from_slice(&buf[..n]);
            if let Some(text) = std::str::from_utf8(&all).ok().filter(|t| complete(t)) {
                return text.to_string();
            }
        }
        String::from_utf8_lossy(&all).into_owned()
    }
}

/// Whether a RESP reply in `text` is whole (a bulk string's announced length read).
fn complete(text: &str) -> bool {
    match text.strip_prefix('$') {
        Some(rest) => rest
            .split_once("\r\n")
            .is_some_and(|(len, body)| len.parse::<usize>().is_ok_and(|len| body.len() >= len + 2)),
        None => text.ends_with("\r\n"),
    }
}

/// A node of a cluster: `serve` sharing rooms through `redis`, two event loops, no
/// rate limit, and a short `--node-timeout` so that a dead node is noticed quickly.
pub fn node(redis: &dyn Shared, extra: &[&str]) -> super::ServerProcess {
    let shared = redis.node_args();
    let mut args = vec!["serve", "--threads", "2", "--max-rate", "0"];
    args.extend(shared.iter().map(String::as_str));
    args.extend(["--node-timeout", "1.5"]);
    args.extend_from_slice(extra);
    super::ServerProcess::start(env!("CARGO_BIN_EXE_rfc6455"), &args)
}

/// Polls `check` every 50 ms until it holds; false after `limit`.
pub fn eventually(limit: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if check() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

/// The value of an unlabelled series in a node's `/metrics`.
pub fn metric(addr: &str, name: &str) -> f64 {
    let (status, _, body) =
        super::sse::request(addr, "GET", "/metrics", "Connection: close\r\n", b"");
    assert_eq!(status, 200, "{body}");
    body.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("{name} in {body}"))
        .parse()
        .unwrap()
}
