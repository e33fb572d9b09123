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
pub trait RoomRegistry {
    /// Adds `id` to `room`; false if it was already a member.
    fn join(&mut self, room: &str, id: ConnId) -> bool;
    /// Removes `id` from `room`; false if it was not a member.
    fn leave(&mut self, room: &str, id: ConnId) -> bool;
    /// Removes `id` from every room (on disconnect); returns the rooms it left.
    fn leave_all(&mut self, id: ConnId) -> Vec<String>;
    /// The members of `room`, in a stable order.
    fn members(&self, room: &str) -> Vec<ConnId>;
    /// The rooms `id` is in.
    fn rooms_of(&self, id: ConnId) -> Vec<String>;
    /// How many rooms have members.
    fn room_count(&self) -> usize;
    /// Whether `id` is in `room` (without listing its rooms).
    fn is_member(&self, room: &str, id: ConnId) -> bool {
        self.rooms_of(id).iter().any(|r| r == room)
    }
    /// How many rooms `id` is in.
    fn room_count_of(&self, id: ConnId) -> usize {
        self.rooms_of(id).len()
    }
}

/// The in-memory registry, for one server process.
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
        ConnId {
            worker: 0,
            slot,
            generation: slot as u64,
        }
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
