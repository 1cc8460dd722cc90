//! Incidents: one per real cause, persisted, served and notified.

pub mod model;
pub mod engine;
pub mod store;

pub use model::*;
pub use store::{Page, Store, StoreError};
