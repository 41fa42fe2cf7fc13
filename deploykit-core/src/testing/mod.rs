//! In-memory twins of every part, sharing one recorded [`World`], with scripted
//! faults ("activate fails on call 1", "probe hangs", "revert panics").
//!
//! They are real implementations over a map, not mocks: the pipeline's guarantees
//! are proven against them at every failure point, and the [`conformance`] suite
//! that they pass is the one the PM2 and Docker adapters run against real servers.

pub mod conformance;
mod faults;
mod hooks;
mod journal;
mod lock;
mod parts;
pub mod state_conformance;
mod state_store;
mod world;

pub use faults::{Fault, Faults};
pub use hooks::{HookCall, HookScript, MemoryHooks};
pub use journal::MemoryJournal;
pub use lock::MemoryLock;
pub use parts::{MemoryBackup, MemoryMigrator, MemoryProbe, MemoryTarget};
pub use state_store::MemoryStateStore;
pub use world::{Snapshot, World};
