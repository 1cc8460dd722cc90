//! lienthong: an async prober for the 168 commune-level sites of Ho Chi Minh City.
#![forbid(unsafe_code)]

pub mod agents;
pub mod availability;
pub mod config;
pub mod health;
pub mod incidents;
pub mod localtime;
pub mod metrics;
pub mod notify;
pub mod probe;
pub mod readiness;
pub mod report;
pub mod reports;
pub mod result_writer;
pub mod scheduler;
pub mod service;
pub mod shard;
pub mod simulator;
pub mod state;
pub mod token;
pub mod web;

pub mod demo;

/// Logs once, at start-up, whether ICMP link rounds can run, and what to do when they cannot.
pub fn icmp_startup_notice(inv: &config::Inventory) {
    let uses_icmp = inv
        .checks
        .iter()
        .any(|c| matches!(&c.probe, probe::ProbeSpec::Icmp(s) if s.udp_echo_port.is_none()));
    if !uses_icmp {
        return;
    }
    let cap = probe::icmp::icmp_capability();
    if cap.socket().is_some() {
        tracing::info!("{}", cap.summary());
    } else {
        tracing::error!(
            "{} — every ICMP link check will fail with reason `permission`",
            cap.summary()
        );
    }
}
