//! Where the core's commands go when the engine task and the relay may run in another process: in
//! cluster mode the handles forward through this trait, which the cluster transport implements
//! (`cluster::link::Link`: the leader's local channels, or the command stream to the leader). The core
//! only knows the trait; a single node never uses it.

use std::future::Future;
use std::pin::Pin;

use crate::chat::engine_task::EngineCommand;
use crate::chat::relay::RelayCommand;

/// A future a forwarder returns: true once the command is on its way, false if it cannot be (no
/// leader, shutting down); the command's own reply channel, if any, says the rest.
pub type Sent<'a> = Pin<Box<dyn Future<Output = bool> + Send + 'a>>;

/// Takes engine and relay commands to wherever those tasks run.
pub trait Forward: Send + Sync + std::fmt::Debug {
    fn engine(&self, cmd: EngineCommand) -> Sent<'_>;
    fn relay(&self, cmd: RelayCommand) -> Sent<'_>;
}
