//! Readiness: "are all 168 sites connected and able to work?", answered over a window with the
//! numbers behind each verdict. The arithmetic ([`compute`]) is pure: it takes the inventory,
//! the history of the window and the critical incidents open at its end. [`load`] fetches those
//! from the store; [`markdown`] and [`csv`] render the report (JSON is its serde form, HTML is in
//! `web::status`).
//!
//! # Criteria (`[readiness]` in probes.toml)
//!
//! For every check of a site, over the window's minutes **outside maintenance**:
//!
//! 1. availability — the mean over its minutes of (passing runs / runs), so a minute of
//!    confirm-interval re-probes weighs no more than a normal one — reaches the target of the
//!    site's link class;
//! 2. the latency quantile (p95 by default: link rounds' average RTT, otherwise the whole
//!    run) is within the class limit (`degraded_rtt` / `degraded_latency`);
//! 3. a link round's loss (lost / sent packets) is within the class's `degraded_loss`;
//!
//! and no critical incident of the site (site or city scope) is open at the end of the window.
//! Where the site has a ward agent, the agent-run copies of the shared-service checks are
//! judged by one more criterion ("shared software reachable from the ward", [`WardServices`]):
//! the availability of each reaches the site's link-class target (no latency limits); it is
//! "không áp dụng" (n/a) elsewhere, and the copies are not the site's or the service's own checks.
//! A check is judged only from its first recorded minute on; it needs `min_observed` of data
//! and `min_coverage` of the minutes expected (at its interval) outside maintenance, otherwise
//! the verdict is "không đủ dữ liệu". Criteria 1–3 are applied once a check has `min_observed`
//! of data, even with low coverage; any failed criterion (or the open incident) → "chưa sẵn
//! sàng", even when other checks lack data; a site all in maintenance has no data to judge.
//!
//! Shared services are judged the same way (their class is usually `datacenter`), and the city
//! is ready when every site and every shared service is.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::config::{CheckDef, CheckRole, Inventory};
use crate::incidents::rollups::{CheckAgg, WindowData};
use crate::incidents::{Incident, Scope};
use crate::localtime::{format_local, format_rfc3339};
use crate::probe::ProbeKind;

mod judge;
mod load;
mod model;
mod render;

pub use judge::*;
pub use load::{load, minute_span, window};
pub use model::*;
pub use render::*;

#[cfg(test)]
mod tests;
