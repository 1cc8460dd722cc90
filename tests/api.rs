//! The incident API on 127.0.0.1:0 over a real SQLite store: listing with filters and cursor
//! pagination, detail, bearer-token auth (401/403), bad input (400 with a JSON reason, 413),
//! acknowledgements and notes, Server-Sent Events (live, Last-Event-ID replay, lagged
//! receivers), the Atom feed (parsed as XML), maintenance windows, and the OpenAPI document
//! against the routes the router really serves.

mod common;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use lienthong::incidents::*;
use lienthong::localtime::parse_rfc3339;
use lienthong::metrics::Metrics;
use lienthong::state::LiveState;
use lienthong::web::openapi::ROUTES;
use lienthong::web::{router, AppState};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use tokio::sync::{broadcast, Notify};

const TOKEN: &str = "s3cret-token-for-tests";

struct Fixture {
    _dir: tempfile::TempDir,
    base: String,
    store: Arc<Store>,
    events: broadcast::Sender<IncidentEvent>,
    maintenance_changed: Arc<Notify>,
    http: reqwest::Client,
    /// Ids of the seeded incidents, oldest first.
    ids: Vec<i64>,
}

fn now_ms() -> UnixMillis {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

fn t(s: &str) -> UnixMillis {
    parse_rfc3339(s).unwrap()
}

fn ev(at: UnixMillis, kind: EventKind, message: &str) -> NewEvent {
    NewEvent {
        at,
        kind,
        check: Some("site/xa-b/endpoint".into()),
        state: Some("down".into()),
        message: message.into(),
        evidence: Some(json!({ "reason": "timeout", "loss": 1.0 })),
    }
}

fn incident(
    key: &str,
    title: &str,
    severity: Severity,
    sites: &[&str],
    teams: &[&str],
) -> NewIncident {
    NewIncident {
        key: key.into(),
        title: title.into(),
        title_en: format!("{key} (en)"),
        severity,
        scope: if sites.len() > 1 {
            Scope::Service
        } else {
            Scope::Site
        },
        sites: sites.iter().map(|s| s.to_string()).collect(),
        service: (sites.len() > 1).then(|| "lgsp".to_string()),
        teams: teams.iter().map(|s| s.to_string()).collect(),
    }
}

/// Five incidents:
/// 1 site/phuong-a/link   critical phuong-a      to-1        2026-11-24 open
/// 2 service/lgsp         critical phuong-a,xa-b to-1,to-2   2026-11-25 resolved
/// 3 site/xa-b/endpoint   warning  xa-b          to-2        2026-11-26 open (+ state change)
/// 4 site/xa-c/video      warning  xa-c          to-2        2026-11-27 open
/// 5 site/<&>             critical xa-d          to-1        2026-11-28 open (escaping)
fn seed(store: &Store) -> Vec<i64> {
    let specs = [
        (
            incident(
                "site/phuong-a/link",
                "Mất kết nối: Phường A",
                Severity::Critical,
                &["phuong-a"],
                &["to-1"],
            ),
            "2026-11-24T01:00:00Z",
        ),
        (
            incident(
                "service/lgsp",
                "Sự cố dịch vụ dùng chung: LGSP",
                Severity::Critical,
                &["phuong-a", "xa-b"],
                &["to-1", "to-2"],
            ),
            "2026-11-25T01:00:00Z",
        ),
        (
            incident(
                "site/xa-b/endpoint",
                "Trung tâm phục vụ hành chính công chậm: Xã B",
                Severity::Warning,
                &["xa-b"],
                &["to-2"],
            ),
            "2026-11-26T01:00:00Z",
        ),
        (
            incident(
                "site/xa-c/video",
                "Điểm cầu truyền hình: Xã C",
                Severity::Warning,
                &["xa-c"],
                &["to-2"],
            ),
            "2026-11-27T01:00:00Z",
        ),
        (
            incident(
                "site/xa-d/link",
                "Mất kết nối: <Xã D> & \"đặc khu\" 'x'",
                Severity::Critical,
                &["xa-d"],
                &["to-1"],
            ),
            "2026-11-28T01:00:00Z",
        ),
    ];
    let mut ids = Vec::new();
    for (new, at) in specs {
        let at = t(at);
        let msg = format!("{} \u{1} <b>&", new.title);
        let (id, created) = store
            .open_incident(&new, &ev(at, EventKind::Opened, &msg), &[])
            .unwrap();
        assert!(created);
        ids.push(id);
    }
    store
        .resolve(
            ids[1],
            &ev(
                t("2026-11-25T02:00:00Z"),
                EventKind::Resolved,
                "Đã khắc phục",
            ),
            &[],
        )
        .unwrap();
    store
        .append_event(
            ids[2],
            &ev(
                t("2026-11-26T01:05:00Z"),
                EventKind::StateChange,
                "Chậm 4 s",
            ),
            &[],
        )
        .unwrap();
    ids
}

async fn fixture_with(token: Option<&str>, capacity: usize) -> Fixture {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(&dir.path().join("lienthong.db")).unwrap());
    let ids = seed(&store);
    let (events, _) = broadcast::channel(capacity);
    let maintenance_changed = Arc::new(Notify::new());
    let app = AppState {
        metrics: Arc::new(Metrics::new()),
        state: Arc::new(LiveState::default()),
        store: store.clone(),
        events: events.clone(),
        api_token: token.map(Arc::from),
        maintenance_changed: maintenance_changed.clone(),
        pages: Default::default(),
        actions: Default::default(),
    };
    let addr = common::serve(router(app)).await;
    Fixture {
        _dir: dir,
        base: format!("http://{addr}"),
        store,
        events,
        maintenance_changed,
        http: reqwest::Client::builder().no_proxy().build().unwrap(),
        ids,
    }
}

async fn fixture() -> Fixture {
    fixture_with(Some(TOKEN), 256).await
}

impl Fixture {
    async fn get(&self, path: &str) -> (StatusCode, Value) {
        let r = self
            .http
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .unwrap();
        let status = r.status();
        let body = r.json().await.unwrap_or(Value::Null);
        (status, body)
    }

    async fn post(&self, path: &str, auth: Option<&str>, body: Option<&str>) -> reqwest::Response {
        let mut req = self.http.post(format!("{}{path}", self.base));
        if let Some(a) = auth {
            req = req.header("authorization", a);
        }
        if let Some(b) = body {
            req = req
                .header("content-type", "application/json")
                .body(b.to_string());
        }
        req.send().await.unwrap()
    }

    async fn post_json(&self, path: &str, body: Value) -> (StatusCode, Value) {
        let bearer = format!("Bearer {TOKEN}");
        let r = self
            .post(path, Some(&bearer), Some(&body.to_string()))
            .await;
        let status = r.status();
        (status, r.json().await.unwrap_or(Value::Null))
    }
}

fn ids_of(page: &Value) -> Vec<i64> {
    page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_i64().unwrap())
        .collect()
}

async fn error_of(r: reqwest::Response) -> (StatusCode, String) {
    let status = r.status();
    let body: Value = r.json().await.expect("a JSON error body");
    (status, body["error"].as_str().expect("error").to_string())
}

#[tokio::test]
async fn list_filters_and_pages() {
    let f = fixture().await;
    let ids = &f.ids;
    let (status, page) = f.get("/api/v1/incidents").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        ids_of(&page),
        ids.iter().rev().copied().collect::<Vec<_>>(),
        "newest first"
    );
    assert!(page["next_cursor"].is_null());
    let first = &page["items"][4];
    assert_eq!(first["started_at"], "2026-11-24T01:00:00Z");
    assert_eq!(first["state"], "open");
    assert!(first.get("events").is_none(), "no timeline in listings");
    assert_eq!(page["items"][3]["resolved_at"], "2026-11-25T02:00:00Z");
    assert_eq!(page["items"][3]["state"], "resolved");

    let f = &f;
    let q = |query: &'static str| async move {
        ids_of(&f.get(&format!("/api/v1/incidents?{query}")).await.1)
    };
    assert_eq!(q("state=resolved").await, vec![ids[1]]);
    assert_eq!(q("state=open").await, vec![ids[4], ids[3], ids[2], ids[0]]);
    assert_eq!(q("severity=warning").await, vec![ids[3], ids[2]]);
    assert_eq!(q("site=xa-b").await, vec![ids[2], ids[1]]);
    assert_eq!(q("team=to-1").await, vec![ids[4], ids[1], ids[0]]);
    assert_eq!(q("team=to-2&severity=critical").await, vec![ids[1]]);
    assert_eq!(
        q("since=2026-11-26T00:00:00Z").await,
        vec![ids[4], ids[3], ids[2]]
    );
    // Local Asia/Ho_Chi_Minh time: 07:00 local = 00:00 UTC.
    assert_eq!(
        q("since=2026-11-26%2007:00").await,
        vec![ids[4], ids[3], ids[2]]
    );
    assert_eq!(
        q("since=2026-11-26T08:00:01%2B07:00").await,
        vec![ids[4], ids[3]]
    );
    assert!(q("site=nowhere").await.is_empty());

    // Cursor pagination visits every incident once, in order.
    let mut seen = Vec::new();
    let mut cursor: Option<i64> = None;
    let mut pages = 0;
    loop {
        let path = match cursor {
            Some(c) => format!("/api/v1/incidents?limit=2&cursor={c}"),
            None => "/api/v1/incidents?limit=2".to_string(),
        };
        let (status, page) = f.get(&path).await;
        assert_eq!(status, StatusCode::OK);
        let got = ids_of(&page);
        assert!(got.len() <= 2);
        seen.extend(got);
        pages += 1;
        match page["next_cursor"].as_i64() {
            Some(c) => cursor = Some(c),
            None => break,
        }
        assert!(pages < 10);
    }
    assert_eq!(seen, ids.iter().rev().copied().collect::<Vec<_>>());
    assert_eq!(pages, 3);
    // Filters and pages combine.
    let (_, page) = f.get("/api/v1/incidents?state=open&limit=3").await;
    assert_eq!(ids_of(&page), vec![ids[4], ids[3], ids[2]]);
    let c = page["next_cursor"].as_i64().unwrap();
    let (_, page) = f
        .get(&format!("/api/v1/incidents?state=open&limit=3&cursor={c}"))
        .await;
    assert_eq!(ids_of(&page), vec![ids[0]]);
    assert!(page["next_cursor"].is_null());
}

#[tokio::test]
async fn list_rejects_bad_filters() {
    let f = fixture().await;
    for (query, names) in [
        ("state=closed", ["state", "open, acknowledged, resolved"]),
        ("severity=info", ["severity", "critical, warning"]),
        ("limit=0", ["limit", "1 to 500"]),
        ("limit=501", ["limit", "1 to 500"]),
        ("limit=ten", ["limit", "1 to 500"]),
        ("cursor=abc", ["cursor", "integer"]),
        ("since=yesterday", ["since", "RFC 3339"]),
        ("since=2026-13-01T00:00:00Z", ["since", "YYYY-MM-DD HH:MM"]),
        ("status=open", ["status", "state, acknowledged, site, team"]),
        ("acknowledged=maybe", ["acknowledged", "true, false"]),
        ("state=open&state=resolved", ["state", "more than once"]),
    ] {
        let (status, body) = f.get(&format!("/api/v1/incidents?{query}")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query}");
        let reason = body["error"].as_str().unwrap_or_default();
        for n in names {
            assert!(reason.contains(n), "{query}: `{reason}` lacks `{n}`");
        }
    }
}

#[tokio::test]
async fn get_one() {
    let f = fixture().await;
    let (status, i) = f.get(&format!("/api/v1/incidents/{}", f.ids[2])).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(i["key"], "site/xa-b/endpoint");
    assert_eq!(i["severity"], "warning");
    let events = i["events"].as_array().unwrap();
    assert_eq!(events.len(), 2);
    assert_eq!(events[0]["kind"], "opened");
    assert_eq!(events[0]["at"], "2026-11-26T01:00:00Z");
    assert_eq!(events[1]["kind"], "state_change");
    assert_eq!(events[1]["evidence"]["reason"], "timeout");
    assert_eq!(i["notes"], json!([]));

    let (status, body) = f.get("/api/v1/incidents/999999").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(body["error"].as_str().unwrap().contains("999999"));
    for bad in ["abc", "-1", "0", "1.5"] {
        let (status, body) = f.get(&format!("/api/v1/incidents/{bad}")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}");
        assert!(body["error"].as_str().unwrap().starts_with("id:"), "{body}");
    }
}

#[tokio::test]
async fn write_endpoints_need_the_token() {
    let f = fixture().await;
    let note = r#"{"author":"An","text":"Đang kiểm tra"}"#;
    for path in [
        format!("/api/v1/incidents/{}/ack", f.ids[0]),
        format!("/api/v1/incidents/{}/notes", f.ids[0]),
        "/api/v1/maintenance".to_string(),
    ] {
        let r = f.post(&path, None, Some(note)).await;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "{path}");
        let challenge = r.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .to_string();
        assert!(challenge.starts_with("Bearer"), "{challenge}");
        let (_, reason) = error_of(r).await;
        assert!(reason.contains("Authorization"), "{reason}");

        for malformed in ["Basic YWRtaW46YWRtaW4=", "Bearer", "Bearer a b", TOKEN] {
            let r = f.post(&path, Some(malformed), Some(note)).await;
            assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "{path} {malformed}");
            assert!(r.headers().contains_key("www-authenticate"));
        }
        for wrong in [
            "Bearer nope",
            "Bearer s3cret-token-for-test",
            "Bearer s3cret-token-for-tests2",
        ] {
            let r = f.post(&path, Some(wrong), Some(note)).await;
            let (status, reason) = error_of(r).await;
            assert_eq!(status, StatusCode::FORBIDDEN, "{path} {wrong}");
            assert!(reason.contains("token"), "{reason}");
        }
    }
    // Nothing was written.
    let i = f.store.get(f.ids[0]).unwrap().unwrap();
    assert!(i.acknowledged_at.is_none() && i.notes.is_empty());

    // Without a configured token the write API is off, whatever is sent.
    let off = fixture_with(None, 16).await;
    for auth in [None, Some(format!("Bearer {TOKEN}"))] {
        let r = off
            .post(
                &format!("/api/v1/incidents/{}/ack", off.ids[0]),
                auth.as_deref(),
                None,
            )
            .await;
        let (status, reason) = error_of(r).await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        assert!(reason.contains("write API disabled"), "{reason}");
        assert!(reason.contains("token_env"), "{reason}");
    }
}

#[tokio::test]
async fn bad_bodies_are_400_with_a_reason() {
    let f = fixture().await;
    let bearer = format!("Bearer {TOKEN}");
    let notes = format!("/api/v1/incidents/{}/notes", f.ids[0]);
    let long = "x".repeat(4001);
    let long_author = "a".repeat(101);
    let cases: Vec<(String, &str)> = vec![
        ("{not json".into(), "invalid JSON"),
        (r#"{"author":"An"}"#.into(), "missing field `text`"),
        (r#"{"text":"hi"}"#.into(), "missing field `author`"),
        (r#"{"author":"An","text":""}"#.into(), "text"),
        (r#"{"author":"An","text":"   "}"#.into(), "text"),
        (format!(r#"{{"author":"An","text":"{long}"}}"#), "1 to 4000"),
        (
            format!(r#"{{"author":"{long_author}","text":"hi"}}"#),
            "author",
        ),
        (
            r#"{"author":"An","text":"hi","txt":1}"#.into(),
            "unknown field `txt`",
        ),
        (r#"{"author":1,"text":"hi"}"#.into(), "invalid type"),
        ("[]".into(), "invalid"),
        ("".into(), "empty body"),
    ];
    for (body, want) in cases {
        let r = f.post(&notes, Some(&bearer), Some(&body)).await;
        let (status, reason) = error_of(r).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body:.40}");
        assert!(
            reason.contains(want),
            "{body:.40}: `{reason}` lacks `{want}`"
        );
    }
    let ack = format!("/api/v1/incidents/{}/ack", f.ids[0]);
    for (body, want) in [
        (r#"{"by":""}"#, "by"),
        (r#"{"who":"x"}"#, "unknown field `who`"),
        ("nope", "invalid JSON"),
    ] {
        let r = f.post(&ack, Some(&bearer), Some(body)).await;
        let (status, reason) = error_of(r).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert!(reason.contains(want), "{body}: `{reason}`");
    }
    // A non-integer id is a 400 after authentication.
    let r = f
        .post("/api/v1/incidents/abc/notes", Some(&bearer), Some("{}"))
        .await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    // Unknown incident.
    let r = f
        .post(
            "/api/v1/incidents/999999/notes",
            Some(&bearer),
            Some(r#"{"author":"An","text":"hi"}"#),
        )
        .await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let r = f
        .post("/api/v1/incidents/999999/ack", Some(&bearer), None)
        .await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);

    // Over 16 KiB → 413 with a JSON reason.
    let big = format!(r#"{{"author":"An","text":"{}"}}"#, "x".repeat(20 * 1024));
    let r = f.post(&notes, Some(&bearer), Some(&big)).await;
    let (status, reason) = error_of(r).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(reason.contains("16 KiB"), "{reason}");
    assert!(f.store.get(f.ids[0]).unwrap().unwrap().notes.is_empty());
}

#[tokio::test]
async fn ack_and_notes() {
    let f = fixture().await;
    let mut rx = f.events.subscribe();
    let (status, i) = f
        .post_json(
            &format!("/api/v1/incidents/{}/ack", f.ids[0]),
            json!({ "by": "Tổ 1 — Nguyễn Văn An" }),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(i["state"], "acknowledged");
    assert_eq!(i["acknowledged_by"], "Tổ 1 — Nguyễn Văn An");
    assert!(parse_rfc3339(i["acknowledged_at"].as_str().unwrap()).is_some());
    let published = rx.try_recv().expect("the ack is published");
    assert_eq!(published.kind, EventKind::Acknowledged);
    assert_eq!(published.incident_id, f.ids[0]);

    // Seen by GET, in the listing filter and in the timeline.
    let (_, got) = f.get(&format!("/api/v1/incidents/{}", f.ids[0])).await;
    assert_eq!(got["state"], "acknowledged");
    assert!(got["events"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["kind"] == "acknowledged" && e["id"] == published.id));
    let (_, page) = f.get("/api/v1/incidents?state=acknowledged").await;
    assert_eq!(ids_of(&page), vec![f.ids[0]]);

    // The same person again: idempotent, publishes nothing new.
    let (status, again) = f
        .post_json(
            &format!("/api/v1/incidents/{}/ack", f.ids[0]),
            json!({ "by": " Tổ 1 — Nguyễn Văn An " }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{again}");
    assert_eq!(again["acknowledged_by"], "Tổ 1 — Nguyễn Văn An");
    assert_eq!(again["acknowledged_at"], i["acknowledged_at"]);
    assert!(rx.try_recv().is_err());

    // Someone else: 409 naming the current acknowledger; nothing changes, nothing published.
    let (status, conflict) = f
        .post_json(
            &format!("/api/v1/incidents/{}/ack", f.ids[0]),
            json!({ "by": "B" }),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{conflict}");
    assert_eq!(conflict["acknowledged_by"], "Tổ 1 — Nguyễn Văn An");
    assert_eq!(conflict["acknowledged_at"], i["acknowledged_at"]);
    assert!(conflict["error"]
        .as_str()
        .unwrap()
        .contains("Tổ 1 — Nguyễn Văn An"));
    assert!(rx.try_recv().is_err());
    let (_, got) = f.get(&format!("/api/v1/incidents/{}", f.ids[0])).await;
    assert_eq!(got["acknowledged_by"], "Tổ 1 — Nguyễn Văn An");
    let acks = got["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "acknowledged")
        .count();
    assert_eq!(acks, 1);

    // `state=open` still lists the acknowledged incident (open = unresolved);
    // `acknowledged` narrows it.
    let ids = &f.ids;
    let (_, page) = f.get("/api/v1/incidents?state=open").await;
    assert_eq!(ids_of(&page), vec![ids[4], ids[3], ids[2], ids[0]]);
    let (_, page) = f
        .get("/api/v1/incidents?state=open&acknowledged=true")
        .await;
    assert_eq!(ids_of(&page), vec![ids[0]]);
    let (_, page) = f.get("/api/v1/incidents?acknowledged=false").await;
    assert_eq!(ids_of(&page), vec![ids[4], ids[3], ids[2]]);
    // Merged pages still visit every unresolved incident once, in order.
    let (_, page) = f.get("/api/v1/incidents?state=open&limit=3").await;
    assert_eq!(ids_of(&page), vec![ids[4], ids[3], ids[2]]);
    let c = page["next_cursor"].as_i64().expect("a next page");
    let (_, page) = f
        .get(&format!("/api/v1/incidents?state=open&limit=3&cursor={c}"))
        .await;
    assert_eq!(ids_of(&page), vec![ids[0]]);
    assert!(page["next_cursor"].is_null());
    let (_, page) = f.get("/api/v1/incidents?state=open&limit=4").await;
    assert_eq!(ids_of(&page).len(), 4);
    assert!(page["next_cursor"].is_null());
    let (status, e) = f
        .get("/api/v1/incidents?state=resolved&acknowledged=true")
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(e["error"].as_str().unwrap().contains("acknowledged"));

    // No body: by = "api".
    let r = f
        .post(
            &format!("/api/v1/incidents/{}/ack", f.ids[3]),
            Some(&format!("bearer {TOKEN}")),
            None,
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let i: Value = r.json().await.unwrap();
    assert_eq!(i["acknowledged_by"], "api");
    assert_eq!(rx.try_recv().unwrap().kind, EventKind::Acknowledged);

    // A note: 201 with the note, then in the detail and the timeline.
    let text = "Đã liên hệ VNPT, dự kiến khắc phục trước 15:00 <ok> & \"xong\"";
    let (status, note) = f
        .post_json(
            &format!("/api/v1/incidents/{}/notes", f.ids[0]),
            json!({ "author": "Bình", "text": text }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(note["author"], "Bình");
    assert_eq!(note["text"], text);
    assert!(note["id"].as_i64().is_some());
    assert!(parse_rfc3339(note["at"].as_str().unwrap()).is_some());
    assert_eq!(rx.try_recv().unwrap().kind, EventKind::Note);
    let (_, got) = f.get(&format!("/api/v1/incidents/{}", f.ids[0])).await;
    assert_eq!(got["notes"][0]["text"], text);
    assert_eq!(
        got["events"].as_array().unwrap().last().unwrap()["kind"],
        "note"
    );
}

/// Reads an SSE body until `done` says the text so far is enough, or `limit` passes.
async fn read_sse(
    r: &mut reqwest::Response,
    text: &mut String,
    limit: Duration,
    done: impl Fn(&str) -> bool,
) -> bool {
    let deadline = tokio::time::Instant::now() + limit;
    while !done(text) {
        match tokio::time::timeout_at(deadline, r.chunk()).await {
            Ok(Ok(Some(chunk))) => text.push_str(&String::from_utf8_lossy(&chunk)),
            _ => return false,
        }
    }
    true
}

/// `(id, event, data)` of each complete message.
fn messages(text: &str) -> Vec<(Option<i64>, String, String)> {
    text.split("\n\n")
        .filter(|m| !m.trim().is_empty() && !text.ends_with(m))
        .filter_map(|m| {
            let mut id = None;
            let mut event = String::new();
            let mut data = String::new();
            for line in m.lines() {
                if let Some(v) = line.strip_prefix("id:") {
                    id = v.trim().parse().ok();
                } else if let Some(v) = line.strip_prefix("event:") {
                    event = v.trim().to_string();
                } else if let Some(v) = line.strip_prefix("data:") {
                    data.push_str(v.trim_start());
                }
            }
            (!event.is_empty()).then_some((id, event, data))
        })
        .collect()
}

async fn open_stream(f: &Fixture, last_event_id: Option<&str>) -> reqwest::Response {
    let mut req = f.http.get(format!("{}/api/v1/incidents/stream", f.base));
    if let Some(id) = last_event_id {
        req = req.header("last-event-id", id);
    }
    let r = tokio::time::timeout(Duration::from_secs(2), req.send())
        .await
        .expect("stream headers within 2 s")
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(r.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/event-stream"));
    r
}

#[tokio::test]
async fn sse_delivers_live_events() {
    let f = fixture().await;
    let mut stream = open_stream(&f, None).await;
    // Past events are not replayed without Last-Event-ID.
    let mut text = String::new();
    assert!(
        !read_sse(&mut stream, &mut text, Duration::from_millis(300), |t| t
            .contains("event:"))
        .await
    );

    let r = f
        .post(
            &format!("/api/v1/incidents/{}/ack", f.ids[2]),
            Some(&format!("Bearer {TOKEN}")),
            Some(r#"{"by":"Tổ 2"}"#),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    assert!(
        read_sse(&mut stream, &mut text, Duration::from_secs(2), |t| t
            .contains("event: acknowledged")
            && t.ends_with("\n\n"))
        .await,
        "no acknowledged event within 2 s: {text:?}"
    );
    let msgs = messages(&text);
    let (id, kind, data) = msgs.iter().find(|m| m.1 == "acknowledged").unwrap();
    let data: Value = serde_json::from_str(data).unwrap();
    assert_eq!(kind, "acknowledged");
    assert_eq!(data["incident_id"], f.ids[2]);
    assert_eq!(data["id"].as_i64(), *id);
    assert_eq!(data["evidence"]["by"], "Tổ 2");
    assert!(parse_rfc3339(data["at"].as_str().unwrap()).is_some());

    // An event the engine stores and publishes.
    let new = ev(
        parse_rfc3339("2026-11-29T00:00:00Z").unwrap(),
        EventKind::Resolved,
        "Đã khắc phục",
    );
    f.store.resolve(f.ids[2], &new, &[]).unwrap();
    let stored = f.store.recent_events(1).unwrap().remove(0);
    f.events.send(stored.clone()).unwrap();
    assert!(
        read_sse(&mut stream, &mut text, Duration::from_secs(2), |t| t
            .contains("event: resolved")
            && t.ends_with("\n\n"))
        .await,
        "{text:?}"
    );
    let ids: Vec<_> = messages(&text).iter().filter_map(|m| m.0).collect();
    assert_eq!(
        ids,
        vec![*id.as_ref().unwrap(), stored.id],
        "no duplicates, in order"
    );
}

#[tokio::test]
async fn sse_replays_after_last_event_id() {
    let f = fixture().await;
    let all = f.store.events_after(0, 1000).unwrap();
    assert_eq!(all.len(), 7);
    let from = all[2].id;
    let mut stream = open_stream(&f, Some(&from.to_string())).await;
    let mut text = String::new();
    let want: Vec<i64> = all[3..].iter().map(|e| e.id).collect();
    let last = *want.last().unwrap();
    assert!(
        read_sse(&mut stream, &mut text, Duration::from_secs(2), |t| {
            messages(t).iter().any(|m| m.0 == Some(last))
        })
        .await,
        "{text:?}"
    );
    let got: Vec<i64> = messages(&text).iter().filter_map(|m| m.0).collect();
    assert_eq!(got, want);
    let kinds: Vec<String> = messages(&text).into_iter().map(|m| m.1).collect();
    assert!(kinds.contains(&"resolved".to_string()) && kinds.contains(&"opened".to_string()));

    // Then live, without repeating the replayed ones.
    let (status, _) = f
        .post_json(
            &format!("/api/v1/incidents/{}/notes", f.ids[0]),
            json!({ "author": "An", "text": "ghi chú" }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    assert!(
        read_sse(&mut stream, &mut text, Duration::from_secs(2), |t| t
            .contains("event: note")
            && t.ends_with("\n\n"))
        .await
    );
    let got: Vec<i64> = messages(&text).iter().filter_map(|m| m.0).collect();
    assert_eq!(got.len(), want.len() + 1);
    assert!(got.windows(2).all(|w| w[0] < w[1]));

    let r = f
        .http
        .get(format!("{}/api/v1/incidents/stream", f.base))
        .header("last-event-id", "x1")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
}

/// A receiver that falls behind the channel is told, then gets every missed event from the
/// store. (The current-thread runtime keeps the server from reading while the test publishes.)
#[tokio::test]
async fn sse_lagged_client_catches_up() {
    let f = fixture_with(Some(TOKEN), 2).await;
    let mut stream = open_stream(&f, None).await;
    let mut text = String::new();
    // Let the server's stream reach its first wait on the channel.
    read_sse(&mut stream, &mut text, Duration::from_millis(200), |_| {
        false
    })
    .await;
    let mut want = Vec::new();
    for n in 0..20 {
        let e = ev(
            parse_rfc3339("2026-11-29T00:00:00Z").unwrap() + n,
            EventKind::StateChange,
            &format!("flap {n}"),
        );
        let id = f.store.append_event(f.ids[0], &e, &[]).unwrap();
        let stored = f.store.events_after(id - 1, 1).unwrap().remove(0);
        let _ = f.events.send(stored);
        want.push(id);
    }
    let last = *want.last().unwrap();
    assert!(
        read_sse(&mut stream, &mut text, Duration::from_secs(2), |t| {
            messages(t).iter().any(|m| m.0 == Some(last))
        })
        .await,
        "{text:?}"
    );
    let msgs = messages(&text);
    assert!(msgs.iter().any(|m| m.1 == "lagged"), "{text:?}");
    let got: Vec<i64> = msgs.iter().filter_map(|m| m.0).collect();
    assert_eq!(got, want, "every event once, in order");
}

#[tokio::test]
async fn atom_feed_is_xml_with_entries() {
    let f = fixture().await;
    let r = f
        .http
        .get(format!("{}/incidents.atom", f.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(
        r.headers()["content-type"],
        "application/atom+xml; charset=utf-8"
    );
    let body = r.text().await.unwrap();
    let doc = roxmltree::Document::parse(&body).expect("well-formed XML");
    const ATOM: &str = "http://www.w3.org/2005/Atom";
    let feed = doc.root_element();
    assert_eq!(feed.tag_name().name(), "feed");
    assert_eq!(feed.tag_name().namespace(), Some(ATOM));
    let child = |n: roxmltree::Node<'_, '_>, name: &str| {
        n.children()
            .find(|c| c.has_tag_name((ATOM, name)))
            .unwrap_or_else(|| panic!("no <{name}>"))
            .text()
            .unwrap_or_default()
            .to_string()
    };
    assert_eq!(child(feed, "title"), "lienthong — sự cố");
    assert_eq!(child(feed, "id"), "urn:lienthong:incidents");
    assert!(parse_rfc3339(&child(feed, "updated")).is_some());
    assert_eq!(child(feed, "updated"), "2026-11-28T01:00:00Z");
    let entries: Vec<_> = feed
        .children()
        .filter(|c| c.has_tag_name((ATOM, "entry")))
        .collect();
    let events = f.store.recent_events(100).unwrap();
    assert_eq!(entries.len(), events.len());
    for (e, stored) in entries.iter().zip(&events) {
        assert_eq!(
            child(*e, "id"),
            format!("urn:lienthong:event:{}", stored.id)
        );
        assert!(parse_rfc3339(&child(*e, "updated")).is_some());
        assert!(!child(*e, "content").is_empty());
    }
    let titles: Vec<String> = entries.iter().map(|e| child(*e, "title")).collect();
    // Newest first = in the order the store recorded them (resolve and the state change last).
    assert_eq!(
        titles[0],
        "Thay đổi trạng thái: Trung tâm phục vụ hành chính công chậm: Xã B"
    );
    assert_eq!(titles[1], "Đã khắc phục: Sự cố dịch vụ dùng chung: LGSP");
    assert_eq!(titles[2], "Mở sự cố: Mất kết nối: <Xã D> & \"đặc khu\" 'x'");
    // The control character in the message became U+FFFD; markup stayed text.
    let content = child(entries[2], "content");
    assert!(content.contains("\u{FFFD} <b>&"), "{content}");
    assert!(content.contains("Mức độ: nghiêm trọng"), "{content}");
    // Absolute links from the Host header.
    let link = entries[2]
        .children()
        .find(|c| c.has_tag_name((ATOM, "link")))
        .unwrap();
    assert_eq!(
        link.attribute("href").unwrap(),
        format!("{}/api/v1/incidents/{}", f.base, f.ids[4])
    );
}

#[tokio::test]
async fn maintenance_windows() {
    let f = fixture().await;
    let (status, list) = f.get("/api/v1/maintenance").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list["items"], json!([]));

    let r = f
        .post(
            "/api/v1/maintenance",
            None,
            Some(r#"{"starts_at":"2099-01-01 22:00","ends_at":"2099-01-02 02:00","reason":"x"}"#),
        )
        .await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);

    let (status, w) = f
        .post_json(
            "/api/v1/maintenance",
            json!({
                "site": "phuong-a",
                "starts_at": "2099-01-01 22:00",
                "ends_at": "2099-01-02T02:00:00+07:00",
                "reason": "Nâng cấp đường truyền"
            }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{w}");
    assert!(w["id"].as_i64().unwrap() > 0);
    assert_eq!(w["site"], "phuong-a");
    assert!(w["service"].is_null());
    assert_eq!(w["starts_at"], "2099-01-01T15:00:00Z");
    assert_eq!(w["ends_at"], "2099-01-01T19:00:00Z");
    assert_eq!(w["created_by"], "api");
    tokio::time::timeout(Duration::from_secs(1), f.maintenance_changed.notified())
        .await
        .expect("the engine is poked");

    let (status, w2) = f
        .post_json(
            "/api/v1/maintenance",
            json!({
                "service": "lgsp",
                // Running now (started an hour ago, ends in a day).
                "starts_at": lienthong::localtime::format_rfc3339(now_ms() - 3_600_000),
                "ends_at": lienthong::localtime::format_rfc3339(now_ms() + 86_400_000),
                "reason": "Bảo trì LGSP",
                "created_by": "Tổ 3"
            }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{w2}");
    let (_, list) = f.get("/api/v1/maintenance").await;
    let items = list["items"].as_array().unwrap();
    assert_eq!(items.len(), 2);
    assert!(items.iter().any(|i| i["id"] == w["id"]));
    assert!(items
        .iter()
        .any(|i| i["service"] == "lgsp" && i["created_by"] == "Tổ 3"));
    assert_eq!(f.store.maintenance_windows(0).unwrap().len(), 2);

    for (body, want) in [
        (
            json!({ "starts_at": "2099-01-01 00:00", "ends_at": "2099-01-02 00:00", "reason": "x" }),
            "\"scope\": \"city\"",
        ),
        (
            json!({ "scope": "everywhere", "starts_at": "2099-01-01 00:00", "ends_at": "2099-01-02 00:00", "reason": "x" }),
            "scope",
        ),
        (
            json!({ "scope": "city", "site": "phuong-a", "starts_at": "2099-01-01 00:00", "ends_at": "2099-01-02 00:00", "reason": "x" }),
            "city",
        ),
        (
            json!({ "scope": "city", "starts_at": "1970-01-01 00:00", "ends_at": "9999-01-01 00:00", "reason": "x" }),
            "max_maintenance",
        ),
        (
            json!({ "scope": "city", "starts_at": "2099-01-01 00:00", "ends_at": "2099-01-01 00:00", "reason": "x" }),
            "ends_at must be after starts_at",
        ),
        (
            json!({ "scope": "city", "starts_at": "2099-01-02 00:00", "ends_at": "2099-01-01 00:00", "reason": "x" }),
            "ends_at must be after starts_at",
        ),
        (
            json!({ "scope": "city", "starts_at": "2000-01-01 00:00", "ends_at": "2000-01-02 00:00", "reason": "x" }),
            "in the past",
        ),
        (
            json!({ "scope": "city", "starts_at": "soon", "ends_at": "2099-01-01 00:00", "reason": "x" }),
            "starts_at",
        ),
        (
            json!({ "scope": "city", "starts_at": "2099-01-01 00:00", "ends_at": "2099-01-01 25:00", "reason": "x" }),
            "ends_at",
        ),
        (
            json!({ "site": "phuong-a", "service": "lgsp", "starts_at": "2099-01-01 00:00", "ends_at": "2099-01-02 00:00", "reason": "x" }),
            "not both",
        ),
        (
            json!({ "site": "Phường A", "starts_at": "2099-01-01 00:00", "ends_at": "2099-01-02 00:00", "reason": "x" }),
            "site",
        ),
        (
            json!({ "scope": "city", "starts_at": "2099-01-01 00:00", "ends_at": "2099-01-02 00:00", "reason": " " }),
            "reason",
        ),
        (
            json!({ "scope": "city", "starts_at": "2099-01-01 00:00", "ends_at": "2099-01-02 00:00" }),
            "missing field `reason`",
        ),
    ] {
        let (status, e) = f.post_json("/api/v1/maintenance", body.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        let reason = e["error"].as_str().unwrap();
        assert!(reason.contains(want), "{body}: `{reason}` lacks `{want}`");
    }
    assert_eq!(f.store.maintenance_windows(0).unwrap().len(), 2);

    // Delete one window, end the other.
    let bearer = format!("Bearer {TOKEN}");
    let del = |id: &str, auth: Option<&str>| {
        let mut req = f.http.delete(format!("{}/api/v1/maintenance/{id}", f.base));
        if let Some(a) = auth {
            req = req.header("authorization", a.to_string());
        }
        req.send()
    };
    let id = w["id"].as_i64().unwrap();
    let r = del(&id.to_string(), None).await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let (status, e) = error_of(del("999", Some(&bearer)).await.unwrap()).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(e.contains("999"), "{e}");
    let (status, e) = error_of(del("x", Some(&bearer)).await.unwrap()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(e.contains("maintenance window"), "{e}");
    let r = del(&id.to_string(), Some(&bearer)).await.unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    tokio::time::timeout(Duration::from_secs(1), f.maintenance_changed.notified())
        .await
        .expect("the engine is poked on delete");
    let (_, list) = f.get("/api/v1/maintenance").await;
    assert_eq!(list["items"].as_array().unwrap().len(), 1);
    let r = del(&id.to_string(), Some(&bearer)).await.unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);

    // End the running LGSP window now: it stops being listed, its record stays.
    let id2 = w2["id"].as_i64().unwrap();
    let end = format!("/api/v1/maintenance/{id2}/end");
    let r = f.post(&end, None, None).await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let r = f.post(&end, Some(&bearer), None).await;
    assert_eq!(r.status(), StatusCode::OK);
    let ended: Value = r.json().await.unwrap();
    assert_eq!(ended["id"], id2);
    assert_eq!(ended["scope"], "service");
    let ends = parse_rfc3339(ended["ends_at"].as_str().unwrap()).unwrap();
    assert!(ends <= now_ms() && ends > now_ms() - 60_000);
    tokio::time::timeout(Duration::from_secs(1), f.maintenance_changed.notified())
        .await
        .expect("the engine is poked on end");
    let (_, list) = f.get("/api/v1/maintenance").await;
    assert_eq!(list["items"], json!([]));
    let stored = f.store.maintenance_window(id2).unwrap().unwrap();
    // (RFC 3339 in the API has whole seconds.)
    assert_eq!(stored.ends_at / 1000 * 1000, ends);
    let (status, e) = error_of(f.post(&end, Some(&bearer), None).await).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert!(e.contains("already ended"), "{e}");
    let (status, _) = error_of(
        f.post("/api/v1/maintenance/12345/end", Some(&bearer), None)
            .await,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // A city-wide window, said explicitly, for at most 7 days.
    let (status, city) = f
        .post_json(
            "/api/v1/maintenance",
            json!({
                "scope": "city",
                "starts_at": "2099-01-01 00:00",
                "ends_at": "2099-01-08 00:00",
                "reason": "Chuyển đổi trung tâm dữ liệu"
            }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{city}");
    assert_eq!(city["scope"], "city");
    assert!(city["site"].is_null() && city["service"].is_null());
}

/// Route paths written in the web layer's source (`.route("…"`).
fn source_routes() -> BTreeSet<String> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/web");
    let re = regex::Regex::new(r#"\.route\(\s*"([^"]+)""#).unwrap();
    let mut paths = BTreeSet::new();
    // src/web and its submodules (src/web/status/…).
    let mut dirs = vec![dir];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(&path).unwrap();
                paths.extend(re.captures_iter(&text).map(|c| c[1].to_string()));
            }
        }
    }
    paths
}

#[tokio::test]
async fn openapi_matches_the_router() {
    let f = fixture().await;
    let (status, doc) = f.get("/api/v1/openapi.json").await;
    assert_eq!(status, StatusCode::OK);
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.0"));
    assert_eq!(
        doc["components"]["securitySchemes"]["bearerAuth"]["scheme"],
        "bearer"
    );

    // The document has exactly ROUTES.
    let documented: BTreeSet<(String, String)> = doc["paths"]
        .as_object()
        .unwrap()
        .iter()
        .flat_map(|(p, ops)| {
            ops.as_object()
                .unwrap()
                .keys()
                .map(|m| (m.to_uppercase(), p.clone()))
                .collect::<Vec<_>>()
        })
        .collect();
    let routes: BTreeSet<(String, String)> = ROUTES
        .iter()
        .map(|(m, p)| (m.to_string(), p.to_string()))
        .collect();
    assert_eq!(documented, routes);
    assert_eq!(routes.len(), ROUTES.len(), "no duplicates in ROUTES");
    // Every path the source registers is documented, and nothing else.
    let paths: BTreeSet<String> = routes.iter().map(|(_, p)| p.clone()).collect();
    assert_eq!(source_routes(), paths);
    // Write operations declare the bearer scheme and their error answers.
    for (m, p) in ROUTES.iter().filter(|(m, _)| *m == "POST") {
        let op = &doc["paths"][p][m.to_lowercase()];
        assert_eq!(op["security"][0]["bearerAuth"], json!([]), "{m} {p}");
        for code in ["400", "401", "403", "413"] {
            assert!(op["responses"].get(code).is_some(), "{m} {p} {code}");
        }
    }

    // Every documented route answers (not the 404 fallback, not 405); every other method on a
    // documented path is 405.
    let concrete = |p: &str| {
        p.replace("{id}", &f.ids[0].to_string())
            .replace("{slug}", "phuong-a")
            .replace("{page}", "sitedown")
    };
    for (m, p) in ROUTES {
        let url = format!("{}{}", f.base, concrete(p));
        let method: Method = m.parse().unwrap();
        let r = tokio::time::timeout(
            Duration::from_secs(5),
            f.http.request(method.clone(), &url).send(),
        )
        .await
        .unwrap()
        .unwrap();
        let status = r.status();
        assert_ne!(status, StatusCode::METHOD_NOT_ALLOWED, "{m} {p}");
        // (No inventory here: /readyz says 503 and the site is unknown.)
        if *m == "GET"
            && ![
                "/api/v1/sites/{slug}",
                "/sites/{slug}",
                "/readyz",
                // The agent's own token is needed (401 without).
                "/api/v1/agents/{slug}/checks",
            ]
            .contains(p)
        {
            assert!(status.is_success(), "{m} {p}: {status}");
        }
        if *m == "POST" {
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{m} {p}");
        }
        if status == StatusCode::NOT_FOUND && *p == "/sites/{slug}" {
            // An HTML page for people, not the API's JSON fallback.
            let body = r.text().await.unwrap();
            assert!(body.starts_with("<!DOCTYPE html>"), "{m} {p}");
        } else if status == StatusCode::NOT_FOUND {
            let body: Value = r.json().await.unwrap();
            assert_ne!(body["error"], "no such endpoint", "{m} {p}");
        }
        for other in ["GET", "POST", "PUT", "PATCH", "DELETE"] {
            if routes.contains(&(other.to_string(), p.to_string())) {
                continue;
            }
            let r = f
                .http
                .request(other.parse().unwrap(), &url)
                .send()
                .await
                .unwrap();
            assert_eq!(
                r.status(),
                StatusCode::METHOD_NOT_ALLOWED,
                "{other} {p} is served but not documented"
            );
        }
    }
    let (status, body) = f.get("/api/v1/nope").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["error"], "no such endpoint");
}

/// Every value named like a duration in a JSON tree is a number of seconds, never serde's
/// `{"secs", "nanos"}` struct.
fn no_duration_structs(v: &Value, path: &str) {
    match v {
        Value::Object(m) => {
            assert!(
                !(m.contains_key("secs") || m.contains_key("nanos")),
                "{path} is a Duration struct: {v}"
            );
            for (k, x) in m {
                no_duration_structs(x, &format!("{path}.{k}"));
            }
        }
        Value::Array(a) => a
            .iter()
            .enumerate()
            .for_each(|(i, x)| no_duration_structs(x, &format!("{path}[{i}]"))),
        _ => {}
    }
}

#[tokio::test]
async fn durations_are_seconds_everywhere() {
    use lienthong::probe::{http::HttpDetails, Details, Outcome, Phases};
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir().unwrap();
    let cfg =
        lienthong::config::Config::load(std::path::Path::new("tests/fixtures/valid.toml")).unwrap();
    let state = Arc::new(LiveState::default());
    state.set_inventory(cfg.inventory.clone());
    let ep = cfg
        .inventory
        .checks
        .iter()
        .find(|c| c.id.key() == "site/a/endpoint")
        .unwrap();
    let mut o = Outcome::ok(Details::Http(HttpDetails {
        phases: Phases {
            resolve: Some(Duration::from_micros(2)),
            connect: Some(Duration::from_nanos(1482)),
            tls: None,
            processing: Some(Duration::from_millis(30)),
            transfer: Some(Duration::from_millis(1)),
        },
        status: Some(200),
        ..Default::default()
    }));
    o.duration = Duration::from_millis(33);
    state.record(&ep.id, &o, std::time::SystemTime::now());
    let (events, _) = broadcast::channel(4);
    let app = AppState {
        metrics: Arc::new(Metrics::new()),
        state,
        store: Arc::new(Store::open(&dir.path().join("db.sqlite")).unwrap()),
        events,
        api_token: None,
        maintenance_changed: Arc::new(Notify::new()),
        pages: Default::default(),
        actions: Default::default(),
    };
    let addr = common::serve(router(app)).await;
    let http = reqwest::Client::new();
    for path in ["/api/v1/checks", "/api/v1/sites/a"] {
        let v: Value = http
            .get(format!("http://{addr}{path}"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        no_duration_structs(&v, path);
    }
    let checks: Value = http
        .get(format!("http://{addr}/api/v1/checks"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let last = &checks
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["key"] == "site/a/endpoint")
        .unwrap()["last"];
    let phases = &last["details"]["phases"];
    assert_eq!(phases["connect"].as_f64(), Some(1.482e-6), "{phases}");
    assert_eq!(phases["processing"].as_f64(), Some(0.03));
    assert!(phases["tls"].is_null());
    assert_eq!(last["duration_seconds"].as_f64(), Some(0.033));
}

#[tokio::test]
async fn build_info_carries_the_git_revision() {
    let f = fixture().await;
    let text = f
        .http
        .get(format!("{}/metrics", f.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let line = text
        .lines()
        .find(|l| l.starts_with("lienthong_build_info{"))
        .expect("lienthong_build_info");
    let git = std::process::Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string());
    // A LIENTHONG_REVISION given by hand at build time wins; else git's, else "unknown".
    let want = std::env::var("LIENTHONG_REVISION")
        .ok()
        .or(git)
        .unwrap_or_else(|| "unknown".to_string());
    assert!(
        line.contains(&format!("revision=\"{want}\"")),
        "{line} (want {want})"
    );
}

/// `POST /api/v1/checks/{owner}/{check}/run` and `lienthong probe --url`: the service runs the
/// check with its own inventory (here pointing at a test server on 127.0.0.1:0).
#[tokio::test]
async fn run_a_check_now_through_the_service() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let target =
        common::serve(axum::Router::new().route("/status", axum::routing::get(|| async { "ok" })))
            .await;
    let text = std::fs::read_to_string("tests/fixtures/valid.toml")
        .unwrap()
        .replace(
            "http://127.0.0.1:1/status",
            &format!("http://{target}/status"),
        );
    let cfg = lienthong::config::Config::from_str(std::path::Path::new("run.toml"), &text).unwrap();
    let state = Arc::new(LiveState::default());
    state.set_inventory(cfg.inventory.clone());
    let dir = tempfile::tempdir().unwrap();
    let (events, _) = broadcast::channel(4);
    let app = AppState {
        metrics: Arc::new(Metrics::new()),
        state: state.clone(),
        store: Arc::new(Store::open(&dir.path().join("db.sqlite")).unwrap()),
        events,
        api_token: Some(Arc::from(TOKEN)),
        maintenance_changed: Arc::new(Notify::new()),
        pages: Default::default(),
        actions: Default::default(),
    };
    let addr = common::serve(router(app)).await;
    let base = format!("http://{addr}");
    let http = reqwest::Client::new();
    let run = |path: &str, auth: bool| {
        let mut req = http.post(format!("{base}/api/v1/checks/{path}/run"));
        if auth {
            req = req.bearer_auth(TOKEN);
        }
        req.send()
    };
    assert_eq!(
        run("lgsp/api", false).await.unwrap().status(),
        StatusCode::UNAUTHORIZED
    );
    let r = run("lgsp/api", true).await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["key"], "service/lgsp/api");
    assert_eq!(v["success"], true, "{v}");
    assert_eq!(v["details"]["status"], 200);
    assert!(v["details"]["phases"]["connect"].as_f64().is_some(), "{v}");
    assert!(
        v["breakdown"]
            .as_str()
            .unwrap()
            .contains("service/lgsp/api"),
        "{v}"
    );
    // Not recorded: the live state did not see the run.
    assert!(state.snapshot().iter().all(|c| c.last.is_none()));
    // A failing check answers its reason.
    let v: Value = run("a/endpoint", true).await.unwrap().json().await.unwrap();
    assert_eq!(v["success"], false);
    assert_eq!(v["reason"], "connect_refused", "{v}");
    // Unknown names: 404 with the closest names.
    for (path, want) in [
        ("lgps/api", "did you mean `lgsp`?"),
        ("lgsp/apx", "did you mean `api`?"),
        ("b/lnk", "did you mean `link`?"),
    ] {
        let (status, e) = error_of(run(path, true).await.unwrap()).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
        assert!(e.contains(want), "{path}: {e}");
    }

    // The CLI prints the same breakdown as a local `probe`.
    let bin = env!("CARGO_BIN_EXE_lienthong");
    let out = tokio::process::Command::new(bin)
        .args(["probe", "--url", &base, "lgsp"])
        .env("LIENTHONG_API_TOKEN", TOKEN)
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("service/lgsp/api"), "{stdout}");
    let local = tokio::process::Command::new(bin)
        .args([
            "probe",
            "--config",
            "tests/fixtures/valid.toml",
            "lgsp",
            "api",
        ])
        .output()
        .await
        .unwrap();
    let local = String::from_utf8_lossy(&local.stdout);
    // Same shape (the local run fails: the fixture points at port 1).
    let first = |s: &str| {
        s.lines()
            .next()
            .unwrap_or("")
            .split_whitespace()
            .next()
            .map(str::to_string)
    };
    assert_eq!(first(&stdout), first(&local), "{stdout}\n---\n{local}");
    let out = tokio::process::Command::new(bin)
        .args(["probe", "--url", &base, "lgps"])
        .env("LIENTHONG_API_TOKEN", TOKEN)
        .output()
        .await
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("did you mean `lgsp`?"));
    // Locally too.
    let out = tokio::process::Command::new(bin)
        .args(["probe", "--config", "tests/fixtures/valid.toml", "lgps"])
        .output()
        .await
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("did you mean `lgsp`?"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
