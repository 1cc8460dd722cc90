//! Maintenance windows of the config (and the API): compiled from `[[maintenance]]` entries,
//! evaluated in Asia/Ho_Chi_Minh local time. Pure; no clock reads.

use serde::Serialize;

use super::MaintenanceSpec;
use crate::localtime::{local_weekday, parse_hhmm, parse_local, DAY_MS, OFFSET_MS};

const WEEKDAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

/// When a window applies.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum When {
    Once {
        start: i64,
        end: i64,
    },
    /// `days`: bit 0 = Monday … bit 6 = Sunday.
    Recurring {
        days: u8,
        start_minute: i64,
        duration_ms: i64,
    },
}

/// A compiled window from the config (or the API).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Window {
    pub site: Option<String>,
    pub service: Option<String>,
    pub reason: String,
    pub when: When,
}

impl Window {
    /// Compiles a config entry; the error says what to fix.
    pub fn compile(spec: &MaintenanceSpec) -> Result<Window, String> {
        let when = match (&spec.start, &spec.end, &spec.every) {
            (Some(s), Some(e), None) => {
                let start = parse_local(s)
                    .ok_or_else(|| format!("start `{s}` is not \"YYYY-MM-DD HH:MM\""))?;
                let end = parse_local(e)
                    .ok_or_else(|| format!("end `{e}` is not \"YYYY-MM-DD HH:MM\""))?;
                if end <= start {
                    return Err("end must be after start".into());
                }
                When::Once { start, end }
            }
            (None, None, Some(every)) => {
                let days = match every.as_str() {
                    "day" => 0x7f,
                    d => {
                        1u8 << WEEKDAYS.iter().position(|w| *w == d).ok_or_else(|| {
                            format!(
                                "every = `{d}`: use \"day\" or one of {}",
                                WEEKDAYS.join(", ")
                            )
                        })?
                    }
                };
                let at = spec
                    .at
                    .as_deref()
                    .ok_or("a recurring window needs at = \"HH:MM\"")?;
                let start_minute =
                    parse_hhmm(at).ok_or_else(|| format!("at = `{at}` is not \"HH:MM\""))?;
                let duration = spec
                    .duration
                    .ok_or("a recurring window needs a duration, e.g. \"2h\"")?
                    .0;
                if duration.is_zero() || duration.as_millis() as i64 > DAY_MS {
                    return Err("duration must be between 1s and 24h".into());
                }
                When::Recurring {
                    days,
                    start_minute,
                    duration_ms: duration.as_millis() as i64,
                }
            }
            _ => return Err("give either start and end, or every + at + duration".into()),
        };
        Ok(Window {
            site: spec.site.clone(),
            service: spec.service.clone(),
            reason: spec.reason.clone(),
            when,
        })
    }

    /// Whether the window is in force at `at` (Unix ms).
    pub fn active_at(&self, at: i64) -> bool {
        match self.when {
            When::Once { start, end } => (start..end).contains(&at),
            When::Recurring {
                days,
                start_minute,
                duration_ms,
            } => {
                // The window may have started today or yesterday (crossing midnight).
                (0..2).any(|back| {
                    let day_start =
                        (at + OFFSET_MS).div_euclid(DAY_MS) * DAY_MS - OFFSET_MS - back * DAY_MS;
                    let start = day_start + start_minute * 60_000;
                    days & (1 << local_weekday(day_start)) != 0
                        && (start..start + duration_ms).contains(&at)
                })
            }
        }
    }

    /// Whether the window covers a site (city-wide windows cover everything).
    pub fn covers(&self, site: Option<&str>, service: Option<&str>) -> bool {
        match (&self.site, &self.service) {
            (None, None) => true,
            (Some(s), _) => site == Some(s.as_str()),
            (None, Some(s)) => service == Some(s.as_str()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(
        start: Option<&str>,
        end: Option<&str>,
        every: Option<&str>,
        at: Option<&str>,
        dur: Option<u64>,
    ) -> MaintenanceSpec {
        MaintenanceSpec {
            site: Some("a".into()),
            service: None,
            reason: "r".into(),
            start: start.map(Into::into),
            end: end.map(Into::into),
            every: every.map(Into::into),
            at: at.map(Into::into),
            duration: dur.map(|s| crate::config::HumanDuration(std::time::Duration::from_secs(s))),
        }
    }

    #[test]
    fn one_off_window() {
        let w = Window::compile(&spec(
            Some("2026-12-01 22:00"),
            Some("2026-12-02 01:00"),
            None,
            None,
            None,
        ))
        .unwrap();
        assert!(!w.active_at(parse_local("2026-12-01 21:59").unwrap()));
        assert!(w.active_at(parse_local("2026-12-01 22:00").unwrap()));
        assert!(w.active_at(parse_local("2026-12-02 00:30").unwrap()));
        assert!(!w.active_at(parse_local("2026-12-02 01:00").unwrap()));
        assert!(w.covers(Some("a"), None) && !w.covers(Some("b"), None));
    }

    #[test]
    fn weekly_window_crossing_midnight() {
        // 2026-11-29 is a Sunday.
        let w = Window::compile(&spec(None, None, Some("sun"), Some("23:00"), Some(7200))).unwrap();
        assert!(w.active_at(parse_local("2026-11-29 23:30").unwrap()));
        assert!(
            w.active_at(parse_local("2026-11-30 00:59").unwrap()),
            "runs past midnight into Monday"
        );
        assert!(!w.active_at(parse_local("2026-11-30 01:00").unwrap()));
        assert!(
            !w.active_at(parse_local("2026-11-28 23:30").unwrap()),
            "not on Saturday"
        );
    }

    #[test]
    fn bad_windows_say_what_to_fix() {
        assert!(Window::compile(&spec(
            Some("tomorrow"),
            Some("2026-12-01 01:00"),
            None,
            None,
            None
        ))
        .unwrap_err()
        .contains("YYYY-MM-DD"));
        assert!(
            Window::compile(&spec(None, None, Some("sunday"), Some("23:00"), Some(60)))
                .unwrap_err()
                .contains("mon")
        );
        assert!(
            Window::compile(&spec(None, None, Some("day"), None, Some(60)))
                .unwrap_err()
                .contains("at =")
        );
        assert!(Window::compile(&spec(None, None, None, None, None))
            .unwrap_err()
            .contains("either"));
    }
}
