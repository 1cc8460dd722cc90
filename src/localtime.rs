//! Asia/Ho_Chi_Minh local time (UTC+7 all year: Vietnam has no DST) and the daily quiet hours of
//! notify targets. Pure functions; no clock reads; depends on nothing in the crate.

/// Offset of Asia/Ho_Chi_Minh from UTC.
pub const OFFSET_MS: i64 = 7 * 3600 * 1000;
pub const DAY_MS: i64 = 86_400_000;

/// Days since 1970-01-01 of a civil date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let doy = (153 * (m + if m > 2 { -3 } else { 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Civil date of days since 1970-01-01.
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// Parses "HH:MM" into minutes of the day.
pub fn parse_hhmm(s: &str) -> Option<i64> {
    let (h, m) = s.trim().split_once(':')?;
    let (h, m): (i64, i64) = (h.parse().ok()?, m.parse().ok()?);
    ((0..24).contains(&h) && (0..60).contains(&m)).then_some(h * 60 + m)
}

/// Parses local "YYYY-MM-DD HH:MM" (or with a `T`) into Unix milliseconds.
pub fn parse_local(s: &str) -> Option<i64> {
    let s = s.trim();
    let (date, time) = s.split_once([' ', 'T'])?;
    let mut parts = date.splitn(3, '-');
    let y: i64 = parts.next()?.parse().ok()?;
    let mo: i64 = parts.next()?.parse().ok()?;
    let d: i64 = parts.next()?.parse().ok()?;
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) {
        return None;
    }
    let minutes = parse_hhmm(time)?;
    Some(days_from_civil(y, mo, d) * DAY_MS + minutes * 60_000 - OFFSET_MS)
}

/// "2026-11-26 13:05" in Asia/Ho_Chi_Minh.
pub fn format_local(ms: i64) -> String {
    let local = ms + OFFSET_MS;
    let (y, m, d) = civil_from_days(local.div_euclid(DAY_MS));
    let minutes = local.rem_euclid(DAY_MS) / 60_000;
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}",
        minutes / 60,
        minutes % 60
    )
}

/// RFC 3339 in UTC with seconds, for feeds and APIs.
pub fn format_rfc3339(ms: i64) -> String {
    let (y, m, d) = civil_from_days(ms.div_euclid(DAY_MS));
    let secs = ms.rem_euclid(DAY_MS) / 1000;
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        4 | 6 | 9 | 11 => 30,
        2 if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        2 => 28,
        _ => 31,
    }
}

/// Parses RFC 3339 (`2026-11-26T00:00:00Z`, `2026-11-26T07:00:00.5+07:00`) into Unix ms.
pub fn parse_rfc3339(s: &str) -> Option<i64> {
    let s = s.trim();
    let b = s.as_bytes();
    let num = |from: usize, to: usize| -> Option<i64> {
        let t = s.get(from..to)?;
        if t.bytes().all(|c| c.is_ascii_digit()) {
            t.parse().ok()
        } else {
            None
        }
    };
    if b.len() < 20
        || b[4] != b'-'
        || b[7] != b'-'
        || !matches!(b[10], b'T' | b't' | b' ')
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let (y, mo, d) = (num(0, 4)?, num(5, 7)?, num(8, 10)?);
    let (h, mi, sec) = (num(11, 13)?, num(14, 16)?, num(17, 19)?);
    if !(1..=12).contains(&mo) || d < 1 || d > days_in_month(y, mo) || h > 23 || mi > 59 || sec > 60
    {
        return None;
    }
    let mut i = 19;
    let mut millis = 0;
    if b[i] == b'.' {
        let start = i + 1;
        i = start;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        if i == start {
            return None;
        }
        let digits = &s[start..i.min(start + 3)];
        millis = digits.parse::<i64>().ok()? * 10_i64.pow(3 - digits.len() as u32);
    }
    let offset_min = match &s[i..] {
        "Z" | "z" => 0,
        zone => {
            let zb = zone.as_bytes();
            if zb.len() != 6 || !matches!(zb[0], b'+' | b'-') || zb[3] != b':' {
                return None;
            }
            let (oh, om) = (num(i + 1, i + 3)?, num(i + 4, i + 6)?);
            if oh > 23 || om > 59 {
                return None;
            }
            let m = oh * 60 + om;
            if zb[0] == b'-' {
                -m
            } else {
                m
            }
        }
    };
    let secs = h * 3600 + mi * 60 + sec.min(59);
    Some(days_from_civil(y, mo, d) * DAY_MS + secs * 1000 + millis - offset_min * 60_000)
}

/// RFC 3339, or local Asia/Ho_Chi_Minh `"YYYY-MM-DD HH:MM"`.
pub fn parse_time(s: &str) -> Option<i64> {
    parse_rfc3339(s).or_else(|| parse_local(s))
}

/// 0 = Monday … 6 = Sunday, local time.
pub fn local_weekday(ms: i64) -> i64 {
    // 1970-01-01 was a Thursday (3).
    ((ms + OFFSET_MS).div_euclid(DAY_MS) + 3).rem_euclid(7)
}

/// Daily quiet hours of a notify target, `"22:00-06:00"` in Asia/Ho_Chi_Minh (may cross
/// midnight; start included, end excluded).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuietHours {
    /// Minutes of the local day.
    pub start: i64,
    pub end: i64,
}

impl QuietHours {
    /// Parses `"HH:MM-HH:MM"`; the error says what is expected.
    pub fn parse(s: &str) -> Result<QuietHours, String> {
        let bad = || {
            format!("quiet_hours `{s}`: expected \"HH:MM-HH:MM\" in Asia/Ho_Chi_Minh time, e.g. \"22:00-06:00\"")
        };
        let (a, b) = s.split_once('-').ok_or_else(bad)?;
        let (start, end) = (
            parse_hhmm(a).ok_or_else(bad)?,
            parse_hhmm(b).ok_or_else(bad)?,
        );
        if start == end {
            return Err(format!(
                "quiet_hours `{s}`: start and end are the same time"
            ));
        }
        Ok(QuietHours { start, end })
    }

    /// When `at` (Unix ms) is inside the quiet hours: the Unix ms at which they end.
    pub fn ends_after(&self, at: i64) -> Option<i64> {
        let local = at + OFFSET_MS;
        let day0 = local - local.rem_euclid(DAY_MS);
        let minute = local.rem_euclid(DAY_MS) / 60_000;
        let inside = if self.start < self.end {
            (self.start..self.end).contains(&minute)
        } else {
            minute >= self.start || minute < self.end
        };
        if !inside {
            return None;
        }
        let mut end = day0 + self.end * 60_000;
        if end <= local {
            end += DAY_MS;
        }
        Some(end - OFFSET_MS)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339() {
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(parse_rfc3339("1970-01-01T07:00:00+07:00"), Some(0));
        assert_eq!(parse_rfc3339("1970-01-01T00:00:01.5Z"), Some(1500));
        assert_eq!(parse_rfc3339("1970-01-01T00:00:01.123456z"), Some(1123));
        let t = parse_rfc3339("2026-11-26T00:00:00Z").unwrap();
        assert_eq!(format_rfc3339(t), "2026-11-26T00:00:00Z");
        assert_eq!(parse_time("2026-11-26 07:00"), Some(t));
        assert_eq!(parse_rfc3339("2026-02-29T00:00:00Z"), None);
        assert!(parse_rfc3339("2028-02-29T00:00:00Z").is_some());
        assert_eq!(parse_rfc3339("2026-11-26T24:00:00Z"), None);
        assert_eq!(parse_rfc3339("2026-11-26T00:00:00"), None);
        assert_eq!(parse_rfc3339("2026-11-26T00:00:00+7:00"), None);
        assert_eq!(parse_rfc3339("2026-11-26T00:00:00.Z"), None);
        assert_eq!(parse_time("yesterday"), None);
    }

    #[test]
    fn local_time_round_trip() {
        let ms = parse_local("2026-11-26 13:05").unwrap();
        assert_eq!(format_local(ms), "2026-11-26 13:05");
        assert_eq!(format_rfc3339(ms), "2026-11-26T06:05:00Z");
        assert_eq!(format_rfc3339(0), "1970-01-01T00:00:00Z");
        assert!(parse_local("2026-13-01 10:00").is_none());
        assert!(parse_local("2026-12-01 24:00").is_none());
    }

    #[test]
    fn quiet_hours_cross_midnight_in_local_time() {
        let q = QuietHours::parse("22:00-06:00").unwrap();
        // 2026-12-01 23:30 local = 16:30 UTC: quiet until 2026-12-02 06:00 local.
        let at = parse_local("2026-12-01 23:30").unwrap();
        assert_eq!(q.ends_after(at), parse_local("2026-12-02 06:00"));
        let at = parse_local("2026-12-02 05:59").unwrap();
        assert_eq!(q.ends_after(at), parse_local("2026-12-02 06:00"));
        assert_eq!(q.ends_after(parse_local("2026-12-02 06:00").unwrap()), None);
        assert_eq!(q.ends_after(parse_local("2026-12-02 21:59").unwrap()), None);
        let day = QuietHours::parse("12:00-13:30").unwrap();
        assert_eq!(
            day.ends_after(parse_local("2026-12-02 12:10").unwrap()),
            parse_local("2026-12-02 13:30")
        );
        assert!(QuietHours::parse("22-06")
            .unwrap_err()
            .contains("HH:MM-HH:MM"));
        assert!(QuietHours::parse("06:00-06:00").is_err());
    }
}
