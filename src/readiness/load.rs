//! Loading a readiness report: resolving the window and reading the store.

use super::{compute, Report};
use crate::config::Inventory;
use crate::incidents::{Store, StoreError};

/// Resolves the window: `from`/`to` in Unix ms, defaulting to the last `default` before `now`.
/// Errors name the problem.
pub fn window(
    from: Option<i64>,
    to: Option<i64>,
    default: std::time::Duration,
    now: i64,
) -> Result<(i64, i64), String> {
    let span = default.as_millis() as i64;
    let (from, to) = match (from, to) {
        (Some(f), Some(t)) => (f, t),
        (Some(f), None) => (f, now.max(f)),
        (None, Some(t)) => (t - span, t),
        (None, None) => (now - span, now),
    };
    if from >= to {
        return Err("`from` must be before `to`".into());
    }
    if from >= now {
        return Err("the window starts in the future".into());
    }
    Ok((from, to))
}

/// Minutes `[from, to)` of a window in ms: whole minutes inside it, ending no later than `now`.
pub fn minute_span(from: i64, to: i64, now: i64) -> (i64, i64) {
    let from_m = from.div_euclid(60_000) + i64::from(from.rem_euclid(60_000) != 0);
    let to_m = to.min(now).div_euclid(60_000);
    (from_m, to_m.max(from_m))
}

/// Reads what the report needs from the store and computes it.
pub fn load(
    store: &Store,
    inv: &Inventory,
    from: i64,
    to: i64,
    now: i64,
) -> Result<Report, StoreError> {
    let (from_m, to_m) = minute_span(from, to, now);
    let data = store.history_window(from_m, to_m)?;
    let critical = store.critical_open_at(to.min(now))?;
    let mut report = compute(inv, &data, &critical, from, to, now);
    let teams: Vec<(String, String)> = inv
        .teams
        .iter()
        .map(|t| (t.name.clone(), t.title.clone()))
        .collect();
    let rows = store.figure_rows(from)?;
    report.team_figures = Some(crate::incidents::figures::compute(
        &rows, &teams, from, to, now,
    ));
    Ok(report)
}
