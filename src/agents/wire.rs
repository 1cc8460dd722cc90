//! The JSON exchanged between an agent and the central. Every body denies unknown fields.

use serde::{Deserialize, Serialize};

use crate::probe::{ProbeSpec, Reason};

/// Results in one batch at most (a larger batch is refused with 413).
pub const MAX_RESULTS: usize = 5_000;
/// Bytes of one batch body at most (413 above).
pub const MAX_BATCH_BYTES: usize = 2 * 1024 * 1024;
/// Local checks (of agent.toml) the central records per agent at most; more are ignored.
pub const MAX_LOCAL_CHECKS: usize = 32;
/// Bytes of a heartbeat body at most.
pub const MAX_HEARTBEAT_BYTES: usize = 16 * 1024;

/// `POST /api/v1/agents/{site}/results`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResultBatch {
    /// Ascending, each result numbered once by the agent (1, 2, 3 …, gaps = dropped).
    pub results: Vec<WireResult>,
    /// Results still waiting in the agent's spool after this batch.
    #[serde(default)]
    pub spooled: u64,
    /// Results the agent's spool dropped (full or too old) since it was created.
    #[serde(default)]
    pub dropped: u64,
    /// The checks of the agent's own agent.toml (sent with every batch), so the central can
    /// record their `local/<name>` results.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub local_checks: Vec<LocalCheckDecl>,
}

/// One `[[check]]` of agent.toml, as declared to the central.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct LocalCheckDecl {
    /// Letters, digits, `-`, `_` (at most 64).
    pub name: String,
    pub title: String,
    pub interval_seconds: f64,
    pub timeout_seconds: f64,
    pub probe: ProbeSpec,
}

/// One finished run, as the agent saw it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct WireResult {
    pub seq: u64,
    /// The central's check key (`service/<slug>/<check>`) or `local/<name>` for a check of
    /// agent.toml (recorded by the agent only).
    pub check: String,
    /// When the run finished, Unix ms on the agent's clock.
    pub finished_ms: i64,
    pub success: bool,
    pub duration_seconds: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<Reason>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// The central's answer to a batch.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BatchReply {
    /// Results of this batch applied now.
    pub applied: u64,
    /// Results of this batch already applied before (a resend): ignored.
    pub duplicates: u64,
    /// Results skipped (not applied) because their check is not run from this ward.
    pub ignored: u64,
    /// The highest sequence the central has applied for this agent.
    pub last_seq: u64,
}

/// `POST /api/v1/agents/{site}/heartbeat`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Heartbeat {
    pub version: String,
    /// Agent clock when sent, Unix ms.
    pub sent_ms: i64,
    /// Central clock − agent clock, from the previous heartbeat's round trip (ms).
    #[serde(default)]
    pub clock_offset_ms: Option<i64>,
    #[serde(default)]
    pub spooled: u64,
    #[serde(default)]
    pub dropped: u64,
}

/// The central's answer to a heartbeat.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HeartbeatReply {
    /// Central clock on receipt, Unix ms (the agent halves the round trip around it).
    pub received_ms: i64,
    pub last_seq: u64,
}

/// `GET /api/v1/agents/{site}/checks`: what the ward should run for the central.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CheckList {
    pub site: String,
    pub checks: Vec<WireCheck>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WireCheck {
    /// `service/<slug>/<check>`: what the results are reported as.
    pub key: String,
    pub title: String,
    pub interval_seconds: f64,
    pub timeout_seconds: f64,
    pub probe: ProbeSpec,
}

/// One agent in `GET /api/v1/agents`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AgentView {
    pub site: String,
    pub name: String,
    pub up: bool,
    /// RFC 3339, None before the first contact since the central started.
    pub last_seen: Option<String>,
    pub version: Option<String>,
    pub clock_offset_ms: Option<i64>,
    /// |offset| above 5 s: timestamps are being shifted to the central clock.
    pub clock_skew: bool,
    pub spooled: u64,
    pub dropped: u64,
    pub last_seq: u64,
    pub applied: u64,
    pub missing: u64,
}
