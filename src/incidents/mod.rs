//! Incidents: one per real cause, persisted, served and notified.

pub mod engine;
pub mod history;
pub mod model;
pub mod open_series;
pub mod store;

pub use model::*;
pub use store::{Page, Store, StoreError};
