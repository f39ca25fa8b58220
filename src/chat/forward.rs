//! The core's commands as one vocabulary, wherever the engine task and the relay run.
//!
//! An engine or relay command is plain data except for two things: the socket it writes to and
//! the channel its answer goes back on. Both are a [`Side`]'s: on this node ([`Local`]) an
//! [`Outbox`] and a `oneshot` channel; between nodes (the cluster transport's side) a socket id of
//! the sending node and a request id. The same command types cross nodes with serde; a
//! [`Translate`] turns one side's command into the other's, field by field.
//!
//! In cluster mode the handles forward through [`Forward`], which the cluster transport implements
//! (`cluster::link::Link`: the leader's local channels, or the command stream to the leader). The
//! core only knows the trait; a single node never uses it.

use std::fmt::Debug;
use std::future::Future;
use std::pin::Pin;

use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::sync::oneshot;

use crate::chat::engine_task::EngineCommand;
use crate::chat::hub::Outbox;
use crate::chat::relay::RelayCommand;
use crate::routing::Input;

/// What the parts of a command that are not data are on one side: the socket it writes to, and
/// where an answer of type `T` goes.
pub trait Side: Sized + Send + Debug + 'static {
    type Socket: Clone + Send + Debug + 'static;
    type Reply<T: Send + Debug + 'static>: Send + Debug;
}

/// This node: sockets are outboxes, answers go back on a `oneshot` channel.
#[derive(Debug)]
pub struct Local;

impl Side for Local {
    type Socket = Outbox;
    type Reply<T: Send + Debug + 'static> = oneshot::Sender<T>;
}

/// An answer that can cross nodes.
pub trait Answer: Serialize + DeserializeOwned + Send + Debug + 'static {}
impl<T: Serialize + DeserializeOwned + Send + Debug + 'static> Answer for T {}

/// Turns side `A`'s sockets and reply channels into side `B`'s (see `RelayCommand::translate`,
/// `EngineCommand::translate`).
pub trait Translate<A: Side, B: Side> {
    fn socket(&mut self, socket: A::Socket) -> B::Socket;
    fn reply<T: Answer>(&mut self, reply: A::Reply<T>) -> B::Reply<T>;
}

/// The engine inputs a session sends, the only ones that may come from another node: the others
/// (`UpsertCounsellor`, `ContactQueued`, `ContactRestoredAssigned`, `Tick`) are the engine task's own.
pub fn from_session(input: &Input) -> bool {
    !matches!(input, Input::UpsertCounsellor(_) | Input::ContactQueued(_) | Input::ContactRestoredAssigned { .. } | Input::Tick)
}

/// A future a forwarder returns: true once the command is on its way, false if it cannot be (no
/// leader, shutting down, a command that never leaves the leader); the command's own reply channel,
/// if any, says the rest.
pub type Sent<'a> = Pin<Box<dyn Future<Output = bool> + Send + 'a>>;

/// Takes engine and relay commands to wherever those tasks run.
pub trait Forward: Send + Sync + std::fmt::Debug {
    fn engine(&self, cmd: EngineCommand) -> Sent<'_>;
    fn relay(&self, cmd: RelayCommand) -> Sent<'_>;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::routing::{ContactId, CounsellorId};

    #[test]
    fn only_what_sessions_send_may_come_from_another_node() {
        let (c, k) = (CounsellorId(1), ContactId(2));
        assert!(from_session(&Input::Accept { counsellor: c, contact: k }));
        assert!(from_session(&Input::EndByCaller { contact: k }));
        assert!(from_session(&Input::SetPriority { contact: k, priority: 5 }));
        assert!(!from_session(&Input::Tick));
        assert!(!from_session(&Input::ContactRestoredAssigned {
            contact: crate::routing::NewContact {
                id: k,
                channel: crate::routing::Channel::Chat,
                helpline: "children".into(),
                language: "ro".into(),
                priority: 0,
                queued_at: 0,
                caller_connected: false,
                senior_only: false,
            },
            counsellor: c,
            answered_at: 0,
        }));
    }
}
