//! Ward agents: `lienthong agent` runs the city's shared-service checks (and local ones) from
//! inside a ward and pushes the results to the central, which feeds them into the same writer
//! path as its own runs (`result_writer`), under their own check identity (vantage
//! `site:<slug>`, see [`crate::config::CheckId::agent`]).
//!
//! - [`wire`]: the JSON of `/api/v1/agents/…` (both sides);
//! - [`hub`]: the central side (tokens, sequence bookkeeping, liveness, metrics);
//! - [`config`], [`spool`], [`run`]: the agent process.

pub mod config;
pub mod hub;
pub mod run;
pub mod spool;
pub mod wire;

/// The agent sends a heartbeat this often (the issue asks for at least every 15 s).
pub const HEARTBEAT_EVERY: std::time::Duration = std::time::Duration::from_secs(10);
/// An agent not heard from for this long is down (`lienthong_agent_up` 0, "agent offline").
pub const AGENT_LOST_AFTER: std::time::Duration = std::time::Duration::from_secs(45);
/// Clock offsets above this are reported (logged, flagged in `GET /api/v1/agents`).
pub const SKEW_REPORT_MS: i64 = 5_000;
