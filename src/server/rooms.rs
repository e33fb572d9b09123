//! Rooms on the event loop: join, leave, leave-all on disconnect, broadcast to a room
//! (optionally except the sender), list members — the real-time features people know
//! from Socket.IO.
//!
//! The registry is behind the [`RoomRegistry`] trait so that another one (e.g. rooms
//! spread over several server processes through Redis pub/sub) can replace the
//! in-memory [`Rooms`]. Broadcasting encodes a frame once ([`SharedFrame`]) and shares
//! its bytes among the recipients.
//!
//! ```
//! use rfc6455::server::rooms::{broadcast, RoomRegistry, Rooms};
//! use rfc6455::server::{ConnId, Ctx, SharedFrame};
//!
//! // In a handler's `message` callback: relay to the room, except the sender.
//! fn relay(rooms: &Rooms, ctx: &mut Ctx<'_, ()>, from: ConnId, room: &str, text: &str) -> usize {
//!     broadcast(rooms, ctx, room, &SharedFrame::text(text), Some(from))
//! }
//! assert_eq!(Rooms::default().room_count(), 0);
//! ```

use super::{ConnId, Outbox, SharedFrame};
use std::collections::{BTreeSet, HashMap};

/// Who is in which room. Rooms exist while they have members: created on first join,
/// removed when the last member leaves.
///
/// A handler written against the trait runs with [`Rooms`] or another registry:
///
/// ```
/// use rfc6455::server::rooms::{RoomRegistry, Rooms};
/// use rfc6455::server::{ConnId, Ctx, Handler, Refusal};
/// # use rfc6455::server::{Accept, Server, ServerConfig};
///
/// struct Chat<R: RoomRegistry>(R);
/// impl<R: RoomRegistry> Handler for Chat<R> {
///     type Data = ();
/// #   fn upgrade(&mut self, _: &rfc6455::handshake::server::Request) -> Result<Accept<()>, Refusal> {
/// #       Ok(Accept::new(()))
/// #   }
///     fn open(&mut self, ctx: &mut Ctx<'_, ()>, id: ConnId) {
///         self.0.join("lobby", id);
///         ctx.send_text(id, &format!("{} in the lobby", self.0.members("lobby").len()));
///     }
/// }
/// # let server = Server::bind("127.0.0.1:0".parse().unwrap(), ServerConfig::default())?;
/// # let (url, handle) = (format!("ws://{}/", server.local_addr()?), server.handle());
/// # let server_thread = std::thread::spawn(move || server.run(Chat(Rooms::default())));
/// let mut ws = rfc6455::blocking::connect(&url)?;
/// assert_eq!(ws.read()?, rfc6455::Event::Text("1 in the lobby".into()));
/// # drop(ws);
/// # handle.shutdown();
/// # server_thread.join().unwrap()?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub trait RoomRegistry {
    /// Adds `id` to `room`; false if it was already a member.
    ///
    /// ```
    /// use rfc6455::server::rooms::{RoomRegistry, Rooms};
    /// use rfc6455::server::{ConnId, Ctx, Handler, Refusal};
    /// # use rfc6455::server::{Accept, Server, ServerConfig};
    /// # use rfc6455::Event;
    ///
    /// struct Chat(Rooms);
    /// impl Handler for Chat {
    ///     type Data = ();
    /// #   fn upgrade(&mut self, _: &rfc6455::handshake::server::Request) -> Result<Accept<()>, Refusal> {
    /// #       Ok(Accept::new(()))
    /// #   }
    ///     fn open(&mut self, ctx: &mut Ctx<'_, ()>, id: ConnId) {
    ///         let joined = self.0.join("lobby", id);
    ///         let again = self.0.join("lobby", id); // a member already
    ///         ctx.send_text(id, &format!("{joined} {again}"));
    ///     }
    /// }
    /// # let server = Server::bind("127.0.0.1:0".parse().unwrap(), ServerConfig::default())?;
    /// # let (url, handle) = (format!("ws://{}/", server.local_addr()?), server.handle());
    /// # let server_thread = std::thread::spawn(move || server.run(Chat(Rooms::default())));
    /// let mut ws = rfc6455::blocking::connect(&url)?;
    /// assert_eq!(ws.read()?, Event::Text("true false".into()));
    /// # drop(ws);
    /// # handle.shutdown();
    /// # server_thread.join().unwrap()?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    fn join(&mut self, room: &str, id: ConnId) -> bool;
    /// Removes `id` from `room`; false if it was not a member.
    ///
    /// ```
    /// use rfc6455::server::rooms::{RoomRegistry, Rooms};
    /// # use rfc6455::server::{ConnId, Ctx, Handler, Received, Refusal};
    /// # use rfc6455::server::{Accept, Server, ServerConfig};
    /// # use rfc6455::Event;
    ///
    /// struct Chat(Rooms);
    /// impl Handler for Chat {
    /// #   type Data = ();
    /// #   fn upgrade(&mut self, _: &rfc6455::handshake::server::Request) -> Result<Accept<()>, Refusal> {
    /// #       Ok(Accept::new(()))
    /// #   }
    ///     fn open(&mut self, _: &mut Ctx<'_, ()>, id: ConnId) { self.0.join("lobby", id); }
    ///     fn message(&mut self, ctx: &mut Ctx<'_, ()>, id: ConnId, _leave: Received<'_>) {
    ///         let left = self.0.leave("lobby", id);
    ///         ctx.send_text(id, &format!("{left}, {} rooms left", self.0.room_count()));
    ///     }
    /// }
    /// # let server = Server::bind("127.0.0.1:0".parse().unwrap(), ServerConfig::default())?;
    /// # let (url, handle) = (format!("ws://{}/", server.local_addr()?), server.handle());
    /// # let server_thread = std::thread::spawn(move || server.run(Chat(Rooms::default())));
    /// let mut ws = rfc6455::blocking::connect(&url)?;
    /// // Its last member gone, the room is gone too; a second leave finds no member.
    /// for answer in ["true, 0 rooms left", "false, 0 rooms left"] {
    ///     ws.send_text("leave")?;
    ///     assert_eq!(ws.read()?, Event::Text(answer.into()));
    /// }
    /// # drop(ws);
    /// # handle.shutdown();
    /// # server_thread.join().unwrap()?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    fn leave(&mut self, room: &str, id: ConnId) -> bool;
    /// Removes `id` from every room (on disconnect); returns the rooms it left.
    ///
    /// ```
    /// use rfc6455::server::rooms::{RoomRegistry, Rooms};
    /// # use rfc6455::server::{CloseInfo, ConnId, Ctx, Handler, Refusal};
    /// # use std::sync::mpsc;
    /// # use rfc6455::server::{Accept, Server, ServerConfig};
    ///
    /// struct Chat(Rooms, mpsc::Sender<Vec<String>>);
    /// impl Handler for Chat {
    ///     type Data = ();
    /// #   fn upgrade(&mut self, _: &rfc6455::handshake::server::Request) -> Result<Accept<()>, Refusal> {
    /// #       Ok(Accept::new(()))
    /// #   }
    ///     fn open(&mut self, _ctx: &mut Ctx<'_, ()>, id: ConnId) {
    ///         self.0.join("news", id);
    ///         self.0.join("lobby", id);
    ///     }
    ///     fn close(&mut self, _ctx: &mut Ctx<'_, ()>, id: ConnId, _: (), _: CloseInfo) {
    ///         self.1.send(self.0.leave_all(id)).unwrap(); // in name order
    ///     }
    /// }
    /// # let server = Server::bind("127.0.0.1:0".parse().unwrap(), ServerConfig::default())?;
    /// # let (url, handle) = (format!("ws://{}/", server.local_addr()?), server.handle());
    /// # let (tx, left) = mpsc::channel();
    /// # let server_thread = std::thread::spawn(move || server.run(Chat(Rooms::default(), tx)));
    /// let ws = rfc6455::blocking::connect(&url)?;
    /// drop(ws); // gone without a word
    /// assert_eq!(left.recv()?, ["lobby", "news"]);
    /// # handle.shutdown();
    /// # server_thread.join().unwrap()?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    fn leave_all(&mut self, id: ConnId) -> Vec<String>;
    /// The members of `room`, in a stable order.
    ///
    /// ```
    /// use rfc6455::server::rooms::{RoomRegistry, Rooms};
    /// # use rfc6455::server::{ConnId, Ctx, Handler, Refusal};
    /// # use rfc6455::server::{Accept, Server, ServerConfig};
    /// # use rfc6455::Event;
    ///
    /// struct Chat(Rooms);
    /// impl Handler for Chat {
    ///     type Data = ();
    /// #   fn upgrade(&mut self, _: &rfc6455::handshake::server::Request) -> Result<Accept<()>, Refusal> {
    /// #       Ok(Accept::new(()))
    /// #   }
    ///     fn open(&mut self, ctx: &mut Ctx<'_, ()>, id: ConnId) {
    ///         self.0.join("lobby", id);
    ///         // Who was there before: everyone in the room but the newcomer.
    ///         let others = self.0.members("lobby").into_iter().filter(|m| *m != id).count();
    ///         ctx.send_text(id, &format!("{others} here before you"));
    ///     }
    /// }
    /// # let server = Server::bind("127.0.0.1:0".parse().unwrap(), ServerConfig::default())?;
    /// # let (url, handle) = (format!("ws://{}/", server.local_addr()?), server.handle());
    /// # let server_thread = std::thread::spawn(move || server.run(Chat(Rooms::default())));
    /// let mut ws = rfc6455::blocking::connect(&url)?;
    /// assert_eq!(ws.read()?, Event::Text("0 here before you".into()));
    /// let mut second = rfc6455::blocking::connect(&url)?;
    /// assert_eq!(second.read()?, Event::Text("1 here before you".into()));
    /// # drop(second);
    /// # drop(ws);
    /// # handle.shutdown();
    /// # server_thread.join().unwrap()?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    fn members(&self, room: &str) -> Vec<ConnId>;
    /// The rooms `id` is in.
    ///
    /// ```
    /// use rfc6455::server::rooms::{RoomRegistry, Rooms};
    /// use rfc6455::server::{ConnId, Ctx, Handler, Refusal};
    /// # use rfc6455::server::{Accept, Server, ServerConfig};
    /// # use rfc6455::Event;
    ///
    /// struct Chat(Rooms);
    /// impl Handler for Chat {
    ///     type Data = ();
    /// #   fn upgrade(&mut self, _: &rfc6455::handshake::server::Request) -> Result<Accept<()>, Refusal> {
    /// #       Ok(Accept::new(()))
    /// #   }
    ///     fn open(&mut self, ctx: &mut Ctx<'_, ()>, id: ConnId) {
    ///         self.0.join("news", id);
    ///         self.0.join("lobby", id);
    ///         ctx.send_text(id, &self.0.rooms_of(id).join(", "));
    ///     }
    /// }
    /// # let server = Server::bind("127.0.0.1:0".parse().unwrap(), ServerConfig::default())?;
    /// # let (url, handle) = (format!("ws://{}/", server.local_addr()?), server.handle());
    /// # let server_thread = std::thread::spawn(move || server.run(Chat(Rooms::default())));
    /// let mut ws = rfc6455::blocking::connect(&url)?;
    /// assert_eq!(ws.read()?, Event::Text("lobby, news".into())); // in name order
    /// # drop(ws);
    /// # handle.shutdown();
    /// # server_thread.join().unwrap()?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    fn rooms_of(&self, id: ConnId) -> Vec<String>;
    /// How many rooms have members.
    ///
    /// ```
    /// use rfc6455::server::rooms::{RoomRegistry, Rooms};
    /// use rfc6455::server::{ConnId, Ctx, Handler, Refusal};
    /// # use rfc6455::server::{Accept, Server, ServerConfig};
    /// # use rfc6455::Event;
    ///
    /// struct Chat(Rooms);
    /// impl Handler for Chat {
    ///     type Data = ();
    /// #   fn upgrade(&mut self, _: &rfc6455::handshake::server::Request) -> Result<Accept<()>, Refusal> {
    /// #       Ok(Accept::new(()))
    /// #   }
    ///     fn open(&mut self, ctx: &mut Ctx<'_, ()>, id: ConnId) {
    ///         self.0.join("lobby", id);
    ///         self.0.join("news", id);
    ///         self.0.leave("news", id); // its last member left: no room any more
    ///         ctx.send_text(id, &format!("{} room", self.0.room_count()));
    ///     }
    /// }
    /// # let server = Server::bind("127.0.0.1:0".parse().unwrap(), ServerConfig::default())?;
    /// # let (url, handle) = (format!("ws://{}/", server.local_addr()?), server.handle());
    /// # let server_thread = std::thread::spawn(move || server.run(Chat(Rooms::default())));
    /// let mut ws = rfc6455::blocking::connect(&url)?;
    /// assert_eq!(ws.read()?, Event::Text("1 room".into()));
    /// # drop(ws);
    /// # handle.shutdown();
    /// # server_thread.join().unwrap()?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    fn room_count(&self) -> usize;
    /// Whether `id` is in `room` (without listing its rooms).
    ///
    /// ```
    /// use rfc6455::server::rooms::{RoomRegistry, Rooms};
    /// # use rfc6455::server::{ConnId, Ctx, Handler, Received, Refusal};
    /// # use rfc6455::server::{Accept, Server, ServerConfig};
    /// # use rfc6455::Event;
    ///
    /// struct Chat(Rooms);
    /// impl Handler for Chat {
    /// #   type Data = ();
    /// #   fn upgrade(&mut self, _: &rfc6455::handshake::server::Request) -> Result<Accept<()>, Refusal> {
    /// #       Ok(Accept::new(()))
    /// #   }
    ///     fn open(&mut self, _: &mut Ctx<'_, ()>, id: ConnId) { self.0.join("lobby", id); }
    ///     fn message(&mut self, ctx: &mut Ctx<'_, ()>, id: ConnId, to: Received<'_>) {
    ///         let Received::Text(room) = to else { return };
    ///         // Only members may post to a room.
    ///         ctx.send_text(id, &format!("{room}: {}", self.0.is_member(room, id)));
    ///     }
    /// }
    /// # let server = Server::bind("127.0.0.1:0".parse().unwrap(), ServerConfig::default())?;
    /// # let (url, handle) = (format!("ws://{}/", server.local_addr()?), server.handle());
    /// # let server_thread = std::thread::spawn(move || server.run(Chat(Rooms::default())));
    /// let mut ws = rfc6455::blocking::connect(&url)?;
    /// for (room, member) in [("lobby", true), ("admins", false)] {
    ///     ws.send_text(room)?;
    ///     assert_eq!(ws.read()?, Event::Text(format!("{room}: {member}")));
    /// }
    /// # drop(ws);
    /// # handle.shutdown();
    /// # server_thread.join().unwrap()?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    fn is_member(&self, room: &str, id: ConnId) -> bool {
        self.rooms_of(id).iter().any(|r| r == room)
    }
    /// How many rooms `id` is in.
    ///
    /// ```
    /// use rfc6455::server::rooms::{RoomRegistry, Rooms};
    /// # use rfc6455::server::{ConnId, Ctx, Handler, Received, Refusal};
    /// # use rfc6455::server::{Accept, Server, ServerConfig};
    /// # use rfc6455::Event;
    ///
    /// struct Chat(Rooms);
    /// impl Handler for Chat {
    /// #   type Data = ();
    /// #   fn upgrade(&mut self, _: &rfc6455::handshake::server::Request) -> Result<Accept<()>, Refusal> {
    /// #       Ok(Accept::new(()))
    /// #   }
    ///     fn message(&mut self, ctx: &mut Ctx<'_, ()>, id: ConnId, join: Received<'_>) {
    ///         let Received::Text(room) = join else { return };
    ///         // A limit per connection, so that one client cannot make rooms without end.
    ///         if self.0.room_count_of(id) < 2 { self.0.join(room, id); }
    ///         ctx.send_text(id, &self.0.rooms_of(id).join(", "));
    ///     }
    /// }
    /// # let server = Server::bind("127.0.0.1:0".parse().unwrap(), ServerConfig::default())?;
    /// # let (url, handle) = (format!("ws://{}/", server.local_addr()?), server.handle());
    /// # let server_thread = std::thread::spawn(move || server.run(Chat(Rooms::default())));
    /// let mut ws = rfc6455::blocking::connect(&url)?;
    /// for (room, now_in) in [("a", "a"), ("b", "a, b"), ("c", "a, b")] {
    ///     ws.send_text(room)?;
    ///     assert_eq!(ws.read()?, Event::Text(now_in.into())); // "c" refused
    /// }
    /// # drop(ws);
    /// # handle.shutdown();
    /// # server_thread.join().unwrap()?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    fn room_count_of(&self, id: ConnId) -> usize {
        self.rooms_of(id).len()
    }
}

/// The in-memory registry, for one server process.
///
/// With several loops ([`ServerConfig::threads`](super::ServerConfig::threads)), the
/// loops' handlers share one, e.g. in an `Arc<Mutex<Rooms>>`.
///
/// ```
/// use rfc6455::server::rooms::{RoomRegistry, Rooms};
/// use std::sync::{Arc, Mutex};
///
/// let rooms = Arc::new(Mutex::new(Rooms::default())); // one for every loop's handler
/// let rooms = rooms.lock().unwrap();
/// // A room nobody joined does not exist: no members, not counted.
/// assert!(rooms.members("lobby").is_empty());
/// assert_eq!(rooms.room_count(), 0);
/// ```
#[derive(Debug, Default)]
pub struct Rooms {
    rooms: HashMap<String, BTreeSet<ConnId>>,
    memberships: HashMap<ConnId, BTreeSet<String>>,
}

impl RoomRegistry for Rooms {
    fn is_member(&self, room: &str, id: ConnId) -> bool {
        self.memberships
            .get(&id)
            .is_some_and(|rooms| rooms.contains(room))
    }

    fn room_count_of(&self, id: ConnId) -> usize {
        self.memberships.get(&id).map_or(0, BTreeSet::len)
    }

    fn join(&mut self, room: &str, id: ConnId) -> bool {
        let added = self.rooms.entry(room.to_string()).or_default().insert(id);
        if added {
            self.memberships
                .entry(id)
                .or_default()
                .insert(room.to_string());
        }
        added
    }

    fn leave(&mut self, room: &str, id: ConnId) -> bool {
        let Some(members) = self.rooms.get_mut(room) else {
            return false;
        };
        let removed = members.remove(&id);
        if members.is_empty() {
            self.rooms.remove(room);
        }
        if let Some(of) = self.memberships.get_mut(&id) {
            of.remove(room);
            if of.is_empty() {
                self.memberships.remove(&id);
            }
        }
        removed
    }

    fn leave_all(&mut self, id: ConnId) -> Vec<String> {
        let rooms: Vec<String> = self
            .memberships
            .remove(&id)
            .map(|set| set.into_iter().collect())
            .unwrap_or_default();
        for room in &rooms {
            if let Some(members) = self.rooms.get_mut(room) {
                members.remove(&id);
                if members.is_empty() {
                    self.rooms.remove(room);
                }
            }
        }
        rooms
    }

    fn members(&self, room: &str) -> Vec<ConnId> {
        self.rooms
            .get(room)
            .map(|m| m.iter().copied().collect())
            .unwrap_or_default()
    }

    fn rooms_of(&self, id: ConnId) -> Vec<String> {
        self.memberships
            .get(&id)
            .map(|r| r.iter().cloned().collect())
            .unwrap_or_default()
    }

    fn room_count(&self) -> usize {
        self.rooms.len()
    }
}

/// Sends `frame` to every member of `room` except `except`; returns how many
/// connections it was queued for. The frame's bytes are shared, not copied. `out` is
/// a callback's [`Ctx`](super::Ctx), or a [`Handle`](super::Handle) from another thread.
///
/// ```
/// use rfc6455::server::rooms::{broadcast, RoomRegistry, Rooms};
/// # use rfc6455::server::{ConnId, Ctx, Handler, Received, Refusal, SharedFrame};
/// # use rfc6455::server::{Accept, Server, ServerConfig};
/// # use rfc6455::Event;
///
/// struct Chat(Rooms);
/// impl Handler for Chat {
///     type Data = ();
/// #   fn upgrade(&mut self, _: &rfc6455::handshake::server::Request) -> Result<Accept<()>, Refusal> {
/// #       Ok(Accept::new(()))
/// #   }
/// #   fn open(&mut self, _ctx: &mut Ctx<'_, ()>, id: ConnId) {
/// #       self.0.join("lobby", id);
/// #   }
///     fn message(&mut self, ctx: &mut Ctx<'_, ()>, from: ConnId, message: Received<'_>) {
///         let Received::Text(text) = message else { return };
///         let n = broadcast(&self.0, ctx, "lobby", &SharedFrame::text(text), Some(from));
///         ctx.send_text(from, &format!("sent to {n}"));
///     }
/// }
/// # let server = Server::bind("127.0.0.1:0".parse().unwrap(), ServerConfig::default())?;
/// # let (url, handle) = (format!("ws://{}/", server.local_addr()?), server.handle());
/// # let server_thread = std::thread::spawn(move || server.run(Chat(Rooms::default())));
/// let (mut alice, mut bob) = (rfc6455::blocking::connect(&url)?, rfc6455::blocking::connect(&url)?);
/// bob.send_text("hi all")?; // both joined the lobby when they connected
/// assert_eq!(alice.read()?, Event::Text("hi all".into()));
/// assert_eq!(bob.read()?, Event::Text("sent to 1".into())); // not to himself
/// # drop((alice, bob));
/// # handle.shutdown();
/// # server_thread.join().unwrap()?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn broadcast(
    registry: &dyn RoomRegistry,
    out: &mut impl Outbox,
    room: &str,
    frame: &SharedFrame,
    except: Option<ConnId>,
) -> usize {
    registry
        .members(room)
        .into_iter()
        .filter(|id| Some(*id) != except)
        .filter(|id| out.send_shared(*id, frame))
        .count()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(slot: usize) -> ConnId {
        ConnId::for_test(slot)
    }

    #[test]
    fn rooms_live_while_they_have_members() {
        let mut rooms = Rooms::default();
        assert!(rooms.join("a", id(1)));
        assert!(!rooms.join("a", id(1)));
        assert!(rooms.join("a", id(2)));
        assert!(rooms.join("b", id(1)));
        assert_eq!(rooms.members("a"), [id(1), id(2)]);
        assert_eq!(rooms.rooms_of(id(1)), ["a", "b"]);
        assert_eq!(rooms.room_count(), 2);
        assert!(rooms.is_member("b", id(1)) && !rooms.is_member("b", id(2)));
        assert_eq!(
            (rooms.room_count_of(id(1)), rooms.room_count_of(id(3))),
            (2, 0)
        );
        assert!(rooms.leave("b", id(1)));
        assert!(!rooms.leave("b", id(1)));
        assert_eq!(rooms.room_count(), 1, "an empty room is removed");
        assert_eq!(rooms.leave_all(id(1)), ["a"]);
        assert_eq!(rooms.members("a"), [id(2)]);
        assert_eq!(rooms.leave_all(id(2)), ["a"]);
        assert_eq!(rooms.room_count(), 0);
        assert!(rooms.rooms_of(id(2)).is_empty());
    }
}
