//! Incidents: one per real cause, persisted, served and notified.

pub mod agent_seq;
pub mod cluster;
pub mod copy;
pub mod correlation;
pub mod db;
pub mod escalation;
pub mod figures;
pub mod location;
pub mod model;
pub mod open_series;
pub mod rollups;
mod schema;
pub mod store;
pub mod vantage;

pub use location::StoreLocation;
pub use model::*;
pub use store::{Page, Store, StoreError};
