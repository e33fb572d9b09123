//! A client of the rooms server (`rfc6455 serve`) speaking its JSON protocol.

use rfc6455::blocking::{self, ClientStream, WebSocket};
use rfc6455::Event;
use serde_json::{json, Value};
use std::time::Duration;

pub struct Client {
    pub ws: WebSocket<ClientStream>,
}

impl Client {
    /// Connects to `ws://ADDR/QUERY`.
    pub fn connect(addr: &str, query: &str) -> Client {
        let ws = blocking::connect(&format!("ws://{addr}/{query}")).unwrap();
        ws.get_ref()
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        Client { ws }
    }

    /// An upgrade of `path` by hand, with `headers` (each line ending in CRLF), for
    /// what the blocking client does not send (`Authorization`, `Cookie`): the
    /// client on a 101, else (status, head, body).
    pub fn upgrade(addr: &str, path: &str, headers: &str) -> Result<Client, (u16, String, String)> {
        use std::io::{Read, Write};
        let mut tcp = std::net::TcpStream::connect(addr).unwrap();
        tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        write!(
            tcp,
            "GET {path} HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n{headers}\r\n"
        )
        .unwrap();
        let mut got = Vec::new();
        let head_end = loop {
            if let Some(at) = got.windows(4).position(|w| w == b"\r\n\r\n") {
                break at + 4;
            }
            let mut chunk = [0u8; 4096];
            let n = tcp.read(&mut chunk).unwrap();
            assert!(n > 0, "closed before the response head: {got:?}");
            got.extend_from_slice(&chunk[..n]);
        };
        let head = String::from_utf8_lossy(&got[..head_end]).to_string();
        let status: u16 = head[9..12].parse().unwrap();
        if status != 101 {
            let mut body = got[head_end..].to_vec();
            let _ = tcp.read_to_end(&mut body);
            return Err((status, head, String::from_utf8_lossy(&body).to_string()));
        }
        let mut conn = rfc6455::Connection::new(rfc6455::Role::Client);
        conn.receive(&got[head_end..]);
        let ws = WebSocket::from_parts(ClientStream::Plain(tcp), conn, None);
        Ok(Client { ws })
    }

    /// Connects and says hello as `name`.
    pub fn hello(addr: &str, name: &str) -> Client {
        Client::hello_node(addr, name).0
    }

    /// Connects to `wss://localhost:PORT/` (the port of `addr`), trusting the test CA,
    /// and says hello as `name`.
    pub fn hello_tls(addr: &str, name: &str) -> Client {
        let port = addr.rsplit(':').next().unwrap();
        let url = format!("wss://localhost:{port}/");
        let ws = blocking::connect_tls(&url, super::tls::client_config()).unwrap();
        ws.get_ref()
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        Client { ws }.said_hello(name).0
    }

    /// Connects, says hello as `name`, and returns the node id the ack names (a node
    /// of a `--redis` cluster names itself; one process alone says nothing).
    pub fn hello_node(addr: &str, name: &str) -> (Client, Option<String>) {
        Client::connect(addr, "").said_hello(name)
    }

    /// Says hello as `name`; the node id of the ack, if any.
    fn said_hello(mut self, name: &str) -> (Client, Option<String>) {
        let c = &mut self;
        c.send(json!({"type": "hello", "name": name, "id": 0}));
        let mut ack = c.recv();
        let node = ack
            .as_object_mut()
            .and_then(|a| a.remove("node"))
            .map(|n| n.as_str().expect("a node id is a string").to_string());
        assert_eq!(ack, json!({"type": "ack", "id": 0, "name": name}));
        (self, node)
    }

    pub fn send(&mut self, value: Value) {
        self.ws.send_text(&value.to_string()).unwrap();
    }

    /// The next JSON message (pings and pongs skipped).
    pub fn recv(&mut self) -> Value {
        loop {
            match self.ws.read().unwrap() {
                Event::Text(text) => return serde_json::from_str(&text).unwrap(),
                Event::Ping(_) | Event::Pong(_) => {}
                other => panic!("unexpected {other:?}"),
            }
        }
    }

    /// The next message of type `kind`, skipping others (e.g. presence events).
    pub fn recv_type(&mut self, kind: &str) -> Value {
        loop {
            let v = self.recv();
            if v["type"] == kind {
                return v;
            }
        }
    }

    /// Joins and returns the messages replayed before the presence event.
    pub fn join(&mut self, room: &str, since: Option<u64>) -> Vec<Value> {
        self.join_with_presence(room, since).0
    }

    /// Joins: the messages replayed, and the members the presence event names.
    pub fn join_with_presence(
        &mut self,
        room: &str,
        since: Option<u64>,
    ) -> (Vec<Value>, Vec<String>) {
        let mut req = json!({"type": "join", "room": room, "id": 1});
        if let Some(s) = since {
            req["since"] = json!(s);
        }
        self.send(req);
        let mut ack = self.recv();
        let epoch = ack.as_object_mut().and_then(|a| a.remove("epoch"));
        assert!(epoch.as_ref().is_some_and(Value::is_string), "{ack}");
        if since.is_some() {
            ack.as_object_mut().unwrap().remove("recovered");
        }
        assert_eq!(
            ack,
            json!({"type": "ack", "id": 1, "room": room, "more": false})
        );
        let mut replayed = Vec::new();
        loop {
            let v = self.recv();
            if v["type"] == "presence" {
                let members = v["members"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|m| m.as_str().unwrap().to_string())
                    .collect();
                return (replayed, members);
            }
            replayed.push(v);
        }
    }

    /// Proves nothing else is queued: a request with a fresh id gets its ack next.
    pub fn assert_nothing_pending(&mut self) {
        self.send(json!({"type": "probe", "id": "probe"}));
        let next = self.recv();
        // An error event (unknown type), answering the probe: nothing came before it.
        assert_eq!(next["id"], "probe", "something was queued before: {next}");
    }
}

/// Two publishers and two listeners, all in `room`: clients 0 and 1 each send `each`
/// messages (texts "0", "1", ...) at once, and every client reads until it has all
/// the messages that are not its own. Then: the listeners saw seq 1..=2×each, no gap,
/// no duplicate, in one same order; each publisher's messages in the order sent; and
/// each publisher saw the other's exactly as the listeners did.
pub fn two_publishers_one_order(clients: Vec<Client>, room: &str, names: [&str; 2], each: u64) {
    assert_eq!(clients.len(), 4, "two publishers, two listeners");
    let readers: Vec<_> = clients
        .into_iter()
        .enumerate()
        .map(|(i, mut c)| {
            let room = room.to_string();
            std::thread::spawn(move || {
                if i < 2 {
                    for n in 0..each {
                        c.send(json!({"type": "message", "room": room, "text": n.to_string()}));
                    }
                }
                let expected = if i < 2 { each } else { 2 * each };
                let mut got = Vec::new();
                while got.len() < expected as usize {
                    let v = c.recv();
                    if v["type"] == "message" {
                        got.push((
                            v["seq"].as_u64().unwrap(),
                            v["from"].clone(),
                            v["text"].clone(),
                        ));
                    }
                }
                got
            })
        })
        .collect();
    let views: Vec<_> = readers.into_iter().map(|r| r.join().unwrap()).collect();
    let seqs: Vec<u64> = views[2].iter().map(|m| m.0).collect();
    assert!(
        seqs == (1..=2 * each).collect::<Vec<_>>(),
        "no gap, no duplicate"
    );
    assert!(views[2] == views[3], "both listeners see one order");
    for (publisher, name) in names.into_iter().enumerate() {
        let own: Vec<String> = views[2]
            .iter()
            .filter(|m| m.1 == name)
            .map(|m| m.2.as_str().unwrap().to_string())
            .collect();
        let sent: Vec<String> = (0..each).map(|n| n.to_string()).collect();
        assert!(own == sent, "{name}'s messages, all, in the order sent");
        let others: Vec<_> = views[2].iter().filter(|m| m.1 != name).cloned().collect();
        assert!(
            views[publisher] == others,
            "{name} saw the other's in the same order"
        );
    }
}
