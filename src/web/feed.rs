//! `GET /incidents.atom`: an Atom 1.0 feed (RFC 4287) for feed readers and chat bots.
//!
//! One entry per **timeline event** — the newest 100, newest first — not one per incident: a
//! reader is then told about each step (opened, acknowledged, note, resolved …) as a new item,
//! which is what a bot relaying to a chat room needs. Entry ids are `urn:lienthong:event:N`
//! (stable forever); the entry title is the event kind in Vietnamese followed by the incident
//! title, e.g. "Đã khắc phục: Mất kết nối: Phường Bến Thành".
//!
//! Written by hand: every text is XML-escaped and characters that XML 1.0 forbids (control
//! characters from probe output) are replaced by U+FFFD.

use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::fmt::Write as _;

use axum::extract::State;
use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Response};

use super::incidents::{db, kind_name, now_ms, severity_name};
use super::AppState;
use crate::incidents::{EventKind, Incident, IncidentEvent, IncidentState, Scope, Severity};
use crate::localtime::{format_local, format_rfc3339};

/// Entries in the feed.
pub const FEED_EVENTS: u32 = 100;
pub const FEED_TITLE: &str = "lienthong — sự cố";
pub const CONTENT_TYPE: &str = "application/atom+xml; charset=utf-8";

pub async fn atom(State(app): State<AppState>, headers: HeaderMap) -> Response {
    let loaded = db(&app, |s| {
        let events = s.recent_events(FEED_EVENTS)?;
        let mut incidents = HashMap::new();
        for e in &events {
            if let Entry::Vacant(slot) = incidents.entry(e.incident_id) {
                if let Some(i) = s.get(e.incident_id)? {
                    slot.insert(i);
                }
            }
        }
        Ok((events, incidents))
    })
    .await;
    let (events, incidents) = match loaded {
        Ok(v) => v,
        Err(e) => return e.into_response(),
    };
    let sites = app.state.inventory().sites.len();
    let body = render(&events, &incidents, &base_url(&headers), now_ms(), sites);
    ([(header::CONTENT_TYPE, CONTENT_TYPE)], body).into_response()
}

/// `http(s)://host` from the request, for absolute links; empty (relative links) when the Host
/// header is absent or not a plain host[:port].
fn base_url(headers: &HeaderMap) -> String {
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| {
            !h.is_empty()
                && h.bytes()
                    .all(|c| c.is_ascii_alphanumeric() || b".-:[]".contains(&c))
        });
    let Some(host) = host else {
        return String::new();
    };
    let https = headers
        .get("x-forwarded-proto")
        .and_then(|p| p.to_str().ok())
        .is_some_and(|p| p.eq_ignore_ascii_case("https"));
    format!("{}://{host}", if https { "https" } else { "http" })
}

/// Vietnamese name of an event kind, as used in entry titles.
pub fn kind_vi(k: EventKind) -> &'static str {
    match k {
        EventKind::Opened => "Mở sự cố",
        EventKind::StateChange => "Thay đổi trạng thái",
        EventKind::Attached => "Ghi nhận lỗi kèm theo",
        EventKind::SitesChanged => "Thay đổi điểm bị ảnh hưởng",
        EventKind::Acknowledged => "Đã tiếp nhận",
        EventKind::Note => "Ghi chú",
        EventKind::Resolved => "Đã khắc phục",
        EventKind::Resumed => "Tiếp tục theo dõi sau khởi động lại",
        EventKind::Unacknowledged => "Bỏ tiếp nhận",
        EventKind::Assigned => "Phân công",
        EventKind::Escalated => "Báo cáo vượt cấp",
    }
}

fn severity_vi(s: Severity) -> &'static str {
    match s {
        Severity::Critical => "nghiêm trọng",
        Severity::Warning => "cảnh báo",
    }
}

fn scope_vi(s: Scope) -> &'static str {
    match s {
        Scope::Site => "một điểm",
        Scope::Service => "dịch vụ dùng chung",
        Scope::City => "toàn thành phố",
        Scope::Prober => "máy giám sát / đường truyền của máy giám sát",
    }
}

fn state_vi(s: IncidentState) -> &'static str {
    match s {
        IncidentState::Open => "đang mở",
        IncidentState::Acknowledged => "đã tiếp nhận",
        IncidentState::Resolved => "đã khắc phục",
    }
}

/// XML-escapes text for element content and attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\t' | '\n' | '\r' => out.push(c),
            c if (c as u32) < 0x20 || c == '\u{FFFE}' || c == '\u{FFFF}' => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

/// The feed document. `events` newest first; `incidents` by id (a missing one is named by id);
/// `sites` = how many sites the inventory has (for the subtitle).
pub fn render(
    events: &[IncidentEvent],
    incidents: &HashMap<i64, Incident>,
    base: &str,
    now: i64,
    sites: usize,
) -> String {
    let updated = events.iter().map(|e| e.at).max().unwrap_or(now);
    let mut x = String::with_capacity(1024 + events.len() * 1024);
    x.push_str("<?xml version=\"1.0\" encoding=\"utf-8\"?>\n");
    x.push_str("<feed xmlns=\"http://www.w3.org/2005/Atom\" xml:lang=\"vi\">\n");
    let _ = writeln!(x, "  <id>urn:lienthong:incidents</id>");
    let _ = writeln!(x, "  <title>{}</title>", escape(FEED_TITLE));
    let _ = writeln!(
        x,
        "  <subtitle>Sự cố của {sites} xã, phường, đặc khu TP. Hồ Chí Minh — incidents of the \
         {sites} commune-level sites of Ho Chi Minh City</subtitle>"
    );
    let _ = writeln!(x, "  <updated>{}</updated>", format_rfc3339(updated));
    let _ = writeln!(
        x,
        "  <link rel=\"self\" type=\"application/atom+xml\" href=\"{}/incidents.atom\"/>",
        escape(base)
    );
    let _ = writeln!(
        x,
        "  <link rel=\"alternate\" type=\"application/json\" href=\"{}/api/v1/incidents\"/>",
        escape(base)
    );
    x.push_str("  <author><name>lienthong</name></author>\n");
    let _ = writeln!(
        x,
        "  <generator version=\"{}\">lienthong</generator>",
        env!("CARGO_PKG_VERSION")
    );
    for e in events {
        entry(&mut x, e, incidents.get(&e.incident_id), base);
    }
    x.push_str("</feed>\n");
    x
}

fn entry(x: &mut String, e: &IncidentEvent, incident: Option<&Incident>, base: &str) {
    let title = match incident {
        Some(i) => format!("{}: {}", kind_vi(e.kind), i.title),
        None => format!("{}: sự cố #{}", kind_vi(e.kind), e.incident_id),
    };
    let mut content = String::new();
    content.push_str(&e.message);
    content.push('\n');
    if let Some(i) = incident {
        let _ = writeln!(content, "Sự cố #{}: {} ({})", i.id, i.title, i.title_en);
        let _ = writeln!(
            content,
            "Mức độ: {} · Phạm vi: {} · Trạng thái: {}",
            severity_vi(i.severity),
            scope_vi(i.scope),
            state_vi(i.state)
        );
        if !i.sites.is_empty() {
            let _ = writeln!(content, "Điểm bị ảnh hưởng: {}", i.sites.join(", "));
        }
        if let Some(s) = &i.service {
            let _ = writeln!(content, "Dịch vụ: {s}");
        }
        if !i.teams.is_empty() {
            let _ = writeln!(content, "Tổ chuyên trách: {}", i.teams.join(", "));
        }
    }
    match (&e.check, &e.state) {
        (Some(c), Some(s)) => {
            let _ = writeln!(content, "Kiểm tra: {c} → {s}");
        }
        (Some(c), None) => {
            let _ = writeln!(content, "Kiểm tra: {c}");
        }
        _ => {}
    }
    if let Some(ev) = &e.evidence {
        let _ = writeln!(content, "Số liệu: {ev}");
    }
    let _ = write!(content, "Lúc: {} (giờ Việt Nam)", format_local(e.at));

    let _ = writeln!(x, "  <entry>");
    let _ = writeln!(x, "    <id>urn:lienthong:event:{}</id>", e.id);
    let _ = writeln!(x, "    <title>{}</title>", escape(&title));
    let _ = writeln!(x, "    <updated>{}</updated>", format_rfc3339(e.at));
    let _ = writeln!(x, "    <published>{}</published>", format_rfc3339(e.at));
    let _ = writeln!(
        x,
        "    <link rel=\"alternate\" type=\"application/json\" href=\"{}/api/v1/incidents/{}\"/>",
        escape(base),
        e.incident_id
    );
    let _ = writeln!(
        x,
        "    <category term=\"{}\" label=\"{}\"/>",
        kind_name(e.kind),
        escape(kind_vi(e.kind))
    );
    if let Some(i) = incident {
        let _ = writeln!(
            x,
            "    <category term=\"{}\" label=\"{}\"/>",
            severity_name(i.severity),
            escape(severity_vi(i.severity))
        );
    }
    let _ = writeln!(
        x,
        "    <content type=\"text\">{}</content>",
        escape(&content)
    );
    let _ = writeln!(x, "  </entry>");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes() {
        assert_eq!(
            escape("a<b>&\"c\"'d'\u{1}\u{7}\te"),
            "a&lt;b&gt;&amp;&quot;c&quot;&apos;d&apos;\u{FFFD}\u{FFFD}\te"
        );
    }

    #[test]
    fn base() {
        let mut h = HeaderMap::new();
        assert_eq!(base_url(&h), "");
        h.insert(header::HOST, "127.0.0.1:8080".parse().unwrap());
        assert_eq!(base_url(&h), "http://127.0.0.1:8080");
        h.insert("x-forwarded-proto", "https".parse().unwrap());
        assert_eq!(base_url(&h), "https://127.0.0.1:8080");
        h.insert(header::HOST, "evil\"><x".parse().unwrap());
        assert_eq!(base_url(&h), "");
    }
}
