//! `GET /api/v1/openapi.json`: an OpenAPI 3.0 document of what the server answers.
//!
//! [`ROUTES`] is the list of (method, path) the router serves; the document has exactly one
//! operation per entry (built from it), and `tests/api.rs` checks both that every entry answers
//! and that no other route is served.

use axum::Json;
use serde_json::{json, Value};

use super::incidents::{
    BODY_LIMIT, DEFAULT_LIMIT, MAX_LIMIT, MAX_NAME_CHARS, MAX_NOTE_CHARS, MAX_REASON_CHARS,
};

/// Every route of the HTTP server, in document order. Paths use the router's `{param}` syntax,
/// which is also OpenAPI's.
pub const ROUTES: &[(&str, &str)] = &[
    ("GET", "/api/v1/incidents"),
    ("GET", "/api/v1/incidents/{id}"),
    ("POST", "/api/v1/incidents/{id}/ack"),
    ("POST", "/api/v1/incidents/{id}/unack"),
    ("POST", "/api/v1/incidents/{id}/assign"),
    ("POST", "/api/v1/incidents/{id}/notes"),
    ("GET", "/api/v1/incidents/stream"),
    ("GET", "/api/v1/maintenance"),
    ("POST", "/api/v1/maintenance"),
    ("DELETE", "/api/v1/maintenance/{id}"),
    ("POST", "/api/v1/maintenance/{id}/end"),
    ("GET", "/api/v1/checks"),
    ("POST", "/api/v1/checks/{owner}/{check}/run"),
    ("POST", "/api/v1/sweep"),
    ("POST", "/api/v1/reports"),
    ("POST", "/api/v1/reports/{id}/close"),
    ("GET", "/api/v1/sites"),
    ("GET", "/api/v1/sites/{slug}"),
    ("GET", "/api/v1/readiness"),
    ("GET", "/api/v1/teams"),
    ("GET", "/api/v1/cluster"),
    ("GET", "/api/v1/agents"),
    ("POST", "/api/v1/agents/{slug}/results"),
    ("POST", "/api/v1/agents/{slug}/heartbeat"),
    ("GET", "/api/v1/agents/{slug}/checks"),
    ("GET", "/api/v1/openapi.json"),
    ("GET", "/"),
    ("GET", "/sites/{slug}"),
    ("GET", "/readiness"),
    ("GET", "/runbooks/"),
    ("GET", "/runbooks/{page}"),
    ("GET", "/incidents.atom"),
    ("GET", "/metrics"),
    ("GET", "/healthz"),
    ("GET", "/readyz"),
];

pub async fn document(
    axum::extract::State(app): axum::extract::State<super::AppState>,
) -> Json<Value> {
    let mut doc = spec();
    let n = app.state.inventory().sites.len();
    if n > 0 {
        // The description counts the sites of the loaded inventory, not a fixed 168.
        if let Some(d) = doc["info"]["description"].as_str() {
            doc["info"]["description"] = json!(d.replace(
                "the commune-level sites",
                &format!("the {n} commune-level sites")
            ));
        }
    }
    Json(doc)
}

fn r(name: &str) -> Value {
    json!({ "$ref": format!("#/components/responses/{name}") })
}

fn s(name: &str) -> Value {
    json!({ "$ref": format!("#/components/schemas/{name}") })
}

fn json_body(schema: Value) -> Value {
    json!({ "application/json": { "schema": schema } })
}

fn text(description: &str) -> Value {
    json!({
        "description": description,
        "content": { "text/plain": { "schema": { "type": "string" } } }
    })
}

fn id_param() -> Value {
    json!({
        "name": "id", "in": "path", "required": true,
        "description": "Incident id (a positive integer); anything else → 400.",
        "schema": { "type": "integer", "format": "int64", "minimum": 1 }
    })
}

fn window_id_param() -> Value {
    json!({
        "name": "id", "in": "path", "required": true,
        "description": "Maintenance window id (a positive integer, from POST or GET /api/v1/maintenance); anything else → 400.",
        "schema": { "type": "integer", "format": "int64", "minimum": 1 }
    })
}

fn query(name: &str, description: &str, schema: Value) -> Value {
    json!({ "name": name, "in": "query", "required": false, "description": description, "schema": schema })
}

/// Responses every token-protected endpoint can give.
fn write_errors(mut responses: Value) -> Value {
    let m = responses.as_object_mut().expect("responses object");
    m.insert("400".into(), r("BadRequest"));
    m.insert("401".into(), r("Unauthorized"));
    m.insert("403".into(), r("Forbidden"));
    m.insert("413".into(), r("PayloadTooLarge"));
    m.insert("500".into(), r("InternalError"));
    responses
}

/// The operation of one route of [`ROUTES`]; None for a route this function does not know (a
/// test makes sure there is none).
pub fn operation(method: &str, path: &str) -> Option<Value> {
    let time_note = "RFC 3339 (2026-11-26T00:00:00Z, any offset) or local Asia/Ho_Chi_Minh time \
                     \"YYYY-MM-DD HH:MM\"";
    let op = match (method, path) {
        ("GET", "/api/v1/incidents") => json!({
            "tags": ["incidents"],
            "operationId": "listIncidents",
            "summary": "List incidents, newest first",
            "description": "Filters combine with AND. Unknown parameters, or a parameter given \
                            twice, → 400. Empty values count as absent.",
            "parameters": [
                query("state", "`open` = every unresolved incident, acknowledged or not (as the \
                               status page counts them); `acknowledged` = unresolved and \
                               acknowledged; `resolved`.",
                      json!({ "type": "string", "enum": ["open", "acknowledged", "resolved"] })),
                query("acknowledged", "Narrows unresolved incidents: `true` = acknowledged, \
                                      `false` = nobody has taken them yet. Alone it implies \
                                      unresolved; with state=resolved → 400.",
                      json!({ "type": "boolean" })),
                query("site", "Slug of an affected site.", json!({ "type": "string" })),
                query("team", "Name of a specialist team ([[team]] in the config).", json!({ "type": "string" })),
                query("severity", "Severity.", json!({ "type": "string", "enum": ["critical", "warning"] })),
                query("since", &format!("Incidents started at or after this time: {time_note}."),
                      json!({ "type": "string", "example": "2026-11-26T00:00:00Z" })),
                query("cursor", "The next_cursor of the previous page.",
                      json!({ "type": "integer", "format": "int64", "minimum": 0 })),
                query("limit", "Page size.",
                      json!({ "type": "integer", "minimum": 1, "maximum": MAX_LIMIT, "default": DEFAULT_LIMIT })),
            ],
            "responses": {
                "200": { "description": "One page.", "content": json_body(s("IncidentPage")) },
                "400": r("BadRequest"),
                "500": r("InternalError")
            }
        }),
        ("GET", "/api/v1/incidents/{id}") => json!({
            "tags": ["incidents"],
            "operationId": "getIncident",
            "summary": "One incident with its timeline and notes",
            "parameters": [id_param()],
            "responses": {
                "200": { "description": "The incident.", "content": json_body(s("Incident")) },
                "400": r("BadRequest"),
                "404": r("NotFound"),
                "500": r("InternalError")
            }
        }),
        ("POST", "/api/v1/incidents/{id}/ack") => json!({
            "tags": ["incidents"],
            "operationId": "acknowledgeIncident",
            "summary": "Acknowledge an incident (idempotent for the same person)",
            "description": "The body is optional; `by` defaults to \"api\". The new timeline \
                            event is published on the SSE stream. The first acknowledgement \
                            holds: the same `by` again → 200 unchanged; another `by` → 409 \
                            naming the current acknowledger. With `expires_in` the \
                            acknowledgement lapses then (an `unacknowledged` event by \
                            \"lienthong\") and the team's escalation resumes if the incident is \
                            still open. While acknowledged, no escalation step fires.",
            "security": [{ "bearerAuth": [] }],
            "parameters": [id_param()],
            "requestBody": { "required": false, "content": json_body(s("AckRequest")) },
            "responses": write_errors(json!({
                "200": { "description": "The acknowledged incident with its timeline.", "content": json_body(s("Incident")) },
                "404": r("NotFound"),
                "409": { "description": "Already acknowledged by someone else.", "content": json_body(s("AckConflict")) }
            }))
        }),
        ("POST", "/api/v1/incidents/{id}/unack") => json!({
            "tags": ["incidents"],
            "operationId": "unacknowledgeIncident",
            "summary": "Withdraw the acknowledgement; the incident is open again",
            "description": "The body is optional; `by` defaults to \"api\". An `unacknowledged` \
                            timeline event records who did it. Escalation resumes: its clock \
                            counts only unacknowledged time, so a step fires once the incident \
                            has been unacknowledged for its `after` in total.",
            "security": [{ "bearerAuth": [] }],
            "parameters": [id_param()],
            "requestBody": { "required": false, "content": json_body(s("UnackRequest")) },
            "responses": write_errors(json!({
                "200": { "description": "The incident with its timeline.", "content": json_body(s("Incident")) },
                "404": r("NotFound"),
                "409": { "description": "Not acknowledged, or resolved: nothing to withdraw.", "content": json_body(s("Error")) }
            }))
        }),
        ("POST", "/api/v1/incidents/{id}/assign") => json!({
            "tags": ["incidents"],
            "operationId": "assignIncident",
            "summary": "Assign an incident to a person (free text), or unassign it",
            "description": "`assignee` is required: a name, or null to unassign. An `assigned` \
                            timeline event records who (`by`) assigned whom; assigning the \
                            current assignee again changes nothing.",
            "security": [{ "bearerAuth": [] }],
            "parameters": [id_param()],
            "requestBody": { "required": true, "content": json_body(s("AssignRequest")) },
            "responses": write_errors(json!({
                "200": { "description": "The incident with its timeline.", "content": json_body(s("Incident")) },
                "404": r("NotFound")
            }))
        }),
        ("GET", "/api/v1/teams") => json!({
            "tags": ["incidents"],
            "operationId": "teamFigures",
            "summary": "Team figures: time to acknowledge and to resolve, open-incident age, incidents per site",
            "description": "Over incidents *started* in [from, to) (default: the last \
                            [readiness] window ending now): per team ([[team]], config order; \
                            then team names found only on incidents) and for the whole city \
                            (`team` = \"*\"), per severity (`all`, `critical`, `warning`): \
                            counts, and median / p90 / max (nearest rank, seconds) of the time \
                            from start to first acknowledgement and to resolution (counted up \
                            to now). `open`: incidents unresolved at the end of the window, \
                            whenever they started. Unknown parameters \
                            or bad values → 400.",
            "parameters": [
                query("window", "Length of the window ending at `to` (or now), e.g. 7d, 24h. Not with from.", json!({ "type": "string", "example": "7d" })),
                query("from", &format!("Start of the window: {time_note}."), json!({ "type": "string" })),
                query("to", &format!("End of the window (exclusive): {time_note}."), json!({ "type": "string" }))
            ],
            "responses": {
                "200": { "description": "The figures.", "content": json_body(s("TeamFigures")) },
                "400": r("BadRequest"),
                "500": r("InternalError")
            }
        }),
        ("POST", "/api/v1/incidents/{id}/notes") => json!({
            "tags": ["incidents"],
            "operationId": "addNote",
            "summary": "Add a technician's note",
            "description": "Also a `note` event of the timeline, published on the SSE stream.",
            "security": [{ "bearerAuth": [] }],
            "parameters": [id_param()],
            "requestBody": { "required": true, "content": json_body(s("NoteRequest")) },
            "responses": write_errors(json!({
                "201": { "description": "The stored note.", "content": json_body(s("Note")) },
                "404": r("NotFound")
            }))
        }),
        ("GET", "/api/v1/incidents/stream") => json!({
            "tags": ["incidents"],
            "operationId": "streamEvents",
            "summary": "Live timeline events (Server-Sent Events)",
            "description": "Each message: `id:` = event id, `event:` = event kind (opened, \
                            state_change, attached, sites_changed, acknowledged, note, resolved, \
                            resumed), `data:` = the Event as JSON. With `Last-Event-ID` the \
                            events after that id are replayed from the store first. A client \
                            that falls behind receives `event: lagged` (data \
                            `{\"skipped\": n}`) and then the missed events from the store. \
                            A `:keep-alive` comment is sent every 15 s.",
            "parameters": [{
                "name": "Last-Event-ID", "in": "header", "required": false,
                "description": "Resume after this event id (browsers send it on reconnect).",
                "schema": { "type": "integer", "format": "int64", "minimum": 0 }
            }],
            "responses": {
                "200": {
                    "description": "An endless event stream.",
                    "content": { "text/event-stream": { "schema": { "type": "string" } } }
                },
                "400": r("BadRequest"),
                "500": r("InternalError")
            }
        }),
        ("GET", "/api/v1/maintenance") => json!({
            "tags": ["maintenance"],
            "operationId": "listMaintenance",
            "summary": "Maintenance windows created through the API that have not ended",
            "description": "Windows from probes.toml are not listed here.",
            "responses": {
                "200": { "description": "The windows.", "content": json_body(s("MaintenanceList")) },
                "500": r("InternalError")
            }
        }),
        ("POST", "/api/v1/maintenance") => json!({
            "tags": ["maintenance"],
            "operationId": "addMaintenance",
            "summary": "Create a maintenance window",
            "description": "During the window checks still run and are recorded, but no \
                            incident is opened for what it covers. The engine picks it up at \
                            once. A window lasts at most [api] max_maintenance (default 7 \
                            days); a city-wide window needs `\"scope\": \"city\"`.",
            "security": [{ "bearerAuth": [] }],
            "requestBody": { "required": true, "content": json_body(s("MaintenanceRequest")) },
            "responses": write_errors(json!({
                "201": { "description": "The stored window.", "content": json_body(s("MaintenanceWindow")) }
            }))
        }),
        ("DELETE", "/api/v1/maintenance/{id}") => json!({
            "tags": ["maintenance"],
            "operationId": "deleteMaintenance",
            "summary": "Delete a maintenance window created through the API",
            "description": "As if it had never been created (past minutes it covered are no \
                            longer counted as maintenance). To stop a running window and keep \
                            its record, use POST …/end.",
            "security": [{ "bearerAuth": [] }],
            "parameters": [window_id_param()],
            "responses": {
                "204": { "description": "Deleted." },
                "400": r("BadRequest"),
                "401": r("Unauthorized"),
                "403": r("Forbidden"),
                "404": r("NotFound"),
                "500": r("InternalError")
            }
        }),
        ("POST", "/api/v1/maintenance/{id}/end") => json!({
            "tags": ["maintenance"],
            "operationId": "endMaintenance",
            "summary": "End a maintenance window now",
            "description": "Sets ends_at to now (a window not started yet then covers \
                            nothing). No body.",
            "security": [{ "bearerAuth": [] }],
            "parameters": [window_id_param()],
            "responses": write_errors(json!({
                "200": { "description": "The window as ended.", "content": json_body(s("MaintenanceWindow")) },
                "404": r("NotFound"),
                "409": { "description": "The window had already ended.", "content": json_body(s("Error")) }
            }))
        }),
        ("GET", "/api/v1/checks") => json!({
            "tags": ["status"],
            "operationId": "listChecks",
            "summary": "Every scheduled check with its last result",
            "responses": {
                "200": { "description": "The checks.", "content": json_body(json!({ "type": "array", "items": s("Check") })) }
            }
        }),
        ("POST", "/api/v1/checks/{owner}/{check}/run") => json!({
            "tags": ["status"],
            "operationId": "runCheck",
            "summary": "Run one check now, with the service's effective config",
            "description": "Builds the probe from the inventory the service is running (in the \
                            demo: UDP echo links and the demo CA) and runs it in the request, \
                            bounded by the check's timeout. The result is answered, not recorded \
                            (no metrics, no incident). `lienthong probe --url` uses it. At most 4 \
                            at once (429). Unknown names → 404 with the closest names.",
            "security": [{ "bearerAuth": [] }],
            "parameters": [
                { "name": "owner", "in": "path", "required": true, "description": "Site or shared-service slug.", "schema": { "type": "string", "example": "phuong-ben-thanh" } },
                { "name": "check", "in": "path", "required": true, "description": "Check name, e.g. link, endpoint.", "schema": { "type": "string", "example": "link" } }
            ],
            "responses": write_errors(json!({
                "200": {
                    "description": "The run.",
                    "content": json_body(json!({
                        "type": "object",
                        "required": ["key", "success", "duration_seconds", "reason", "message", "details", "breakdown"],
                        "properties": {
                            "key": { "type": "string" },
                            "success": { "type": "boolean" },
                            "duration_seconds": { "type": "number", "format": "double" },
                            "reason": { "type": "string", "nullable": true },
                            "message": { "type": "string", "nullable": true },
                            "details": { "type": "object", "additionalProperties": true, "description": "Per kind; durations in seconds." },
                            "breakdown": { "type": "string", "description": "The text `lienthong probe` prints." }
                        }
                    }))
                },
                "404": r("NotFound"),
                "422": { "description": "The probe cannot be built (e.g. a secret's variable is missing in the service).", "content": json_body(s("Error")) },
                "429": { "description": "Too many on-demand runs in progress.", "content": json_body(s("Error")) }
            }))
        }),
        ("POST", "/api/v1/sweep") => json!({
            "tags": ["status"],
            "operationId": "sweep",
            "summary": "Pre-conference sweep: probe every site's conference point and link now",
            "description": format!("Runs each selected site's `video` (conference point) and \
                            `link` checks now, in parallel within [scheduler] max_concurrency and \
                            per_site_concurrency, with the schedule's own probes; every result is \
                            recorded like a scheduled run (health, history, incidents). A site is \
                            ready when all of them succeed (a site without a `video` check is not). \
                            Each site's answer is waited for at most {} s. The body is optional: \
                            no filter = every site; given conditions all hold. Unknown site, former \
                            province or team, or a filter matching no site → 400 naming it. \
                            `Accept: text/event-stream` answers live as Server-Sent Events: \
                            `start` {{total, sites:[{{site,name}}]}}, one `site` (a SweepRow) per \
                            site as it finishes, then `done` (the Sweep). At most 2 sweeps at once \
                            (429). `lienthong sweep --url` and the status page's \
                            \"Kiểm tra trước hội nghị\" button use it.", super::sweep::DEADLINE.as_secs()),
            "security": [{ "bearerAuth": [] }],
            "requestBody": {
                "required": false,
                "content": json_body(json!({
                    "type": "object",
                    "additionalProperties": false,
                    "properties": {
                        "sites": { "type": "array", "items": { "type": "string" }, "maxItems": super::sweep::MAX_SITES, "description": "Site slugs." },
                        "former_province": { "type": "string", "nullable": true, "example": "binh-duong" },
                        "team": { "type": "string", "nullable": true, "description": "A [[team]] name: the sites it covers.", "example": "to-tphcm" }
                    }
                }))
            },
            "responses": write_errors(json!({
                "200": {
                    "description": "The table (JSON), or the live stream with `Accept: text/event-stream`.",
                    "content": {
                        "application/json": { "schema": s("Sweep") },
                        "text/event-stream": { "schema": { "type": "string" } }
                    }
                },
                "429": { "description": "Two sweeps are already running.", "content": json_body(s("Error")) },
                "503": { "description": "The scheduler is not running.", "content": json_body(s("Error")) }
            }))
        }),
        ("POST", "/api/v1/reports") => json!({
            "tags": ["incidents"],
            "operationId": "report",
            "summary": "A ward officer reports a problem at a site",
            "description": "Bearer token: the site's own token or a token of a team covering the \
                            site ([reports] tokens_file / team_token_env; not the API write token). \
                            The report is attached to the timeline of the site's open automatic \
                            incident when there is one (its link incident first; no second page), \
                            else to the site's open `reported` incident, else it opens one (key \
                            `site/<slug>/reported`, warning, 201). A `reported` incident ends when \
                            an automatic incident of the site opens (merged into it) or through \
                            `POST /api/v1/reports/{id}/close`. A token for another site → 403.",
            "security": [{ "bearerAuth": [] }],
            "requestBody": {
                "required": true,
                "content": json_body(json!({
                    "type": "object",
                    "additionalProperties": false,
                    "required": ["site", "what", "contact"],
                    "properties": {
                        "site": { "type": "string", "example": "phuong-ben-thanh" },
                        "what": { "type": "string", "maxLength": MAX_NOTE_CHARS, "example": "Điểm cầu không có tiếng" },
                        "contact": { "type": "string", "maxLength": MAX_NAME_CHARS, "example": "Nguyễn Văn A, 0909 000 000" }
                    }
                }))
            },
            "responses": write_errors(json!({
                "200": { "description": "Attached to an open incident.", "content": json_body(s("ReportOutcome")) },
                "201": { "description": "A `reported` incident was opened.", "content": json_body(s("ReportOutcome")) },
                "503": { "description": "The incident engine is not running.", "content": json_body(s("Error")) }
            }))
        }),
        ("POST", "/api/v1/reports/{id}/close") => json!({
            "tags": ["incidents"],
            "operationId": "closeReport",
            "summary": "Close an open `reported` incident (the problem is fixed)",
            "description": "With the site's token or a token of a team covering the incident's site. \
                            Optional body `{\"by\": \"name\"}` (recorded on the timeline). An \
                            automatic incident, or one not open → 409.",
            "security": [{ "bearerAuth": [] }],
            "parameters": [id_param()],
            "requestBody": {
                "required": false,
                "content": json_body(json!({
                    "type": "object", "additionalProperties": false,
                    "properties": { "by": { "type": "string", "maxLength": MAX_NAME_CHARS } }
                }))
            },
            "responses": write_errors(json!({
                "200": { "description": "Closed.", "content": json_body(json!({ "type": "object", "properties": { "id": { "type": "integer" }, "closed": { "type": "boolean" } } })) },
                "404": r("NotFound"),
                "409": { "description": "Not a `reported` incident, or not open.", "content": json_body(s("Error")) },
                "503": { "description": "The incident engine is not running.", "content": json_body(s("Error")) }
            }))
        }),
        ("GET", "/api/v1/sites") => json!({
            "tags": ["status"],
            "operationId": "listSites",
            "summary": "The sites of the inventory",
            "responses": {
                "200": { "description": "The sites.", "content": json_body(json!({ "type": "array", "items": s("Site") })) }
            }
        }),
        ("GET", "/api/v1/sites/{slug}") => json!({
            "tags": ["status"],
            "operationId": "getSite",
            "summary": "One site with its checks",
            "parameters": [{
                "name": "slug", "in": "path", "required": true,
                "schema": { "type": "string", "example": "phuong-ben-thanh" }
            }],
            "responses": {
                "200": {
                    "description": "The site.",
                    "content": json_body(json!({
                        "type": "object",
                        "required": ["site", "checks"],
                        "properties": { "site": s("Site"), "checks": { "type": "array", "items": s("Check") } }
                    }))
                },
                "404": r("NotFound")
            }
        }),
        ("GET", "/api/v1/readiness") => json!({
            "tags": ["status"],
            "operationId": "readiness",
            "summary": "Readiness report: city summary, per-site verdicts with reasons and numbers",
            "description": "Over [from, to) (default: the last [readiness] window, 24 h), \
                            maintenance minutes left out. Verdicts: `ready` (sẵn sàng), \
                            `not_ready` (chưa sẵn sàng), `insufficient_data` (không đủ dữ liệu); \
                            every finding in Vietnamese (`vi`) and English (`en`). Also per former \
                            province, per team and per shared service. `to` later than now ends \
                            now. Unknown parameters → 400.",
            "parameters": [
                query("from", &format!("Start of the window: {time_note}."), json!({ "type": "string" })),
                query("to", &format!("End of the window (exclusive): {time_note}."), json!({ "type": "string" }))
            ],
            "responses": {
                "200": {
                    "description": "The report.",
                    "content": json_body(json!({
                        "type": "object",
                        "required": ["from", "to", "city", "sites", "services", "provinces", "teams", "criteria"],
                        "properties": {
                            "from": { "type": "string", "format": "date-time" },
                            "to": { "type": "string", "format": "date-time" },
                            "city": {
                                "type": "object",
                                "description": "`headline` is \"R/N sẵn sàng\" (R ready of the inventory's N sites), or \"Đang thu thập dữ liệu — còn ~N phút\" while no site has a verdict yet.",
                                "properties": {
                                    "total": { "type": "integer" }, "ready": { "type": "integer" },
                                    "not_ready": { "type": "integer" }, "insufficient_data": { "type": "integer" },
                                    "services_total": { "type": "integer" }, "services_ready": { "type": "integer" },
                                    "all_ready": { "type": "boolean" },
                                    "headline": { "type": "string" }, "headline_en": { "type": "string" }
                                }
                            },
                            "sites": { "type": "array", "items": { "type": "object", "description": "slug, verdict, reasons, notes, open_critical, checks (availability, target, latency quantile and limit, loss, minutes observed / expected / in maintenance)." } },
                            "services": { "type": "array", "items": { "type": "object" } },
                            "provinces": { "type": "array", "items": { "type": "object" } },
                            "teams": { "type": "array", "items": { "type": "object" } },
                            "criteria": { "type": "object" },
                            "team_figures": s("TeamFigures")
                        }
                    }))
                },
                "400": r("BadRequest"),
                "500": r("InternalError")
            }
        }),
        ("GET", "/") => json!({
            "tags": ["pages"],
            "operationId": "statusPage",
            "summary": "Status page of all sites (HTML; `?lang=en` for English)",
            "parameters": [query("lang", "`en` for English; Vietnamese otherwise.", json!({ "type": "string", "enum": ["vi", "en"] }))],
            "responses": { "200": { "description": "The page.", "content": { "text/html": { "schema": { "type": "string" } } } } }
        }),
        ("GET", "/runbooks/") => json!({
            "tags": ["pages"],
            "operationId": "runbookIndex",
            "summary": "The runbooks: one page per alert and incident kind, Vietnamese first (HTML)",
            "responses": {
                "200": { "description": "The index.", "content": { "text/html": { "schema": { "type": "string" } } } }
            }
        }),
        ("GET", "/runbooks/{page}") => json!({
            "tags": ["pages"],
            "operationId": "runbookPage",
            "summary": "One runbook (HTML), by name with or without `.md`",
            "parameters": [
                { "name": "page", "in": "path", "required": true, "schema": { "type": "string", "example": "sitedown" } }
            ],
            "responses": {
                "200": { "description": "The page.", "content": { "text/html": { "schema": { "type": "string" } } } },
                "404": r("NotFound")
            }
        }),
        ("GET", "/sites/{slug}") => json!({
            "tags": ["pages"],
            "operationId": "sitePage",
            "summary": "One site: checks, last results, latency chart, incidents (HTML)",
            "parameters": [
                { "name": "slug", "in": "path", "required": true, "schema": { "type": "string", "example": "phuong-ben-thanh" } },
                query("lang", "`en` for English; Vietnamese otherwise.", json!({ "type": "string", "enum": ["vi", "en"] }))
            ],
            "responses": {
                "200": { "description": "The page.", "content": { "text/html": { "schema": { "type": "string" } } } },
                "404": { "description": "No such site (an HTML page).", "content": { "text/html": { "schema": { "type": "string" } } } }
            }
        }),
        ("GET", "/readiness") => json!({
            "tags": ["pages"],
            "operationId": "readinessPage",
            "summary": "The readiness report as an HTML page (same parameters as /api/v1/readiness, plus lang)",
            "parameters": [
                query("from", &format!("Start of the window: {time_note}."), json!({ "type": "string" })),
                query("to", &format!("End of the window: {time_note}."), json!({ "type": "string" })),
                query("lang", "`en` for English; Vietnamese otherwise.", json!({ "type": "string", "enum": ["vi", "en"] }))
            ],
            "responses": {
                "200": { "description": "The report.", "content": { "text/html": { "schema": { "type": "string" } } } },
                "400": r("BadRequest")
            }
        }),
        ("GET", "/api/v1/openapi.json") => json!({
            "tags": ["meta"],
            "operationId": "openapi",
            "summary": "This document",
            "responses": {
                "200": { "description": "OpenAPI 3.0 document.", "content": json_body(json!({ "type": "object" })) }
            }
        }),
        ("GET", "/incidents.atom") => json!({
            "tags": ["incidents"],
            "operationId": "atomFeed",
            "summary": "Atom 1.0 feed of the newest 100 timeline events",
            "description": "One entry per timeline event, newest first; entry id \
                            `urn:lienthong:event:N`, title = the event kind in Vietnamese and \
                            the incident title.",
            "responses": {
                "200": {
                    "description": "The feed.",
                    "content": { "application/atom+xml": { "schema": { "type": "string" } } }
                },
                "500": r("InternalError")
            }
        }),
        ("GET", "/metrics") => json!({
            "tags": ["meta"],
            "operationId": "metrics",
            "summary": "Prometheus metrics (text exposition format 0.0.4)",
            "responses": { "200": text("Metrics.") }
        }),
        ("GET", "/healthz") => json!({
            "tags": ["meta"],
            "operationId": "healthz",
            "summary": "Liveness: the process answers",
            "responses": { "200": text("`ok`.") }
        }),
        ("GET", "/api/v1/cluster") => json!({
            "tags": ["cluster"],
            "operationId": "cluster",
            "summary": "Instances sharing the store: role (leader/standby) and last heartbeat",
            "description": "On a PostgreSQL store every instance probes and serves the API; the \
                            holder of the leader lease runs the incident engine and delivers \
                            notifications. `role` is this instance's; `members` lists every \
                            instance that ever joined, newest heartbeat first (an instance whose \
                            heartbeat is older than 15 s is gone). A SQLite store: `shared` \
                            false, no members, role leader.",
            "responses": {
                "200": { "description": "The cluster.", "content": json_body(s("Cluster")) },
                "503": r("Unavailable")
            }
        }),
        ("GET", "/api/v1/agents") => json!({
            "tags": ["agents"],
            "operationId": "listAgents",
            "summary": "Every configured ward agent: last seen, version, clock offset, spool",
            "description": "One entry per `[[agent]]`. `up` = heard from (heartbeat or batch) in \
                            the last 45 s. `last_seq` / `applied` / `missing` come from the \
                            store: every result sequence is applied once; `missing` counts \
                            sequences never received (dropped by a full agent spool).",
            "responses": {
                "200": { "description": "The agents.", "content": json_body(json!({ "type": "array", "items": s("Agent") })) }
            }
        }),
        ("POST", "/api/v1/agents/{slug}/results") => json!({
            "tags": ["agents"],
            "operationId": "pushAgentResults",
            "summary": "A ward agent pushes a batch of results (idempotent by sequence)",
            "description": "Authenticated with the agent's own token (`[[agent]]` token_file or \
                            token_sha256): missing or unknown token → 401, another site's \
                            token → 403. The batch is validated whole (ascending `seq` from 1, \
                            known checks, a reason for each failure) before anything is applied: \
                            malformed → 400, over 2 MiB or 5000 results → 413. Results whose \
                            `seq` was applied before are counted as duplicates and ignored, so \
                            a resent batch is applied once. Accepted results go through the \
                            same writer as the central's own runs, as `vantage=\"site:<slug>\"` \
                            copies of the service checks; timestamps are shifted by the \
                            agent's clock offset.",
            "security": [{ "bearerAuth": [] }],
            "parameters": [
                { "name": "slug", "in": "path", "required": true, "description": "The agent's site slug.", "schema": { "type": "string", "example": "phuong-ben-thanh" } }
            ],
            "requestBody": { "required": true, "content": json_body(s("ResultBatch")) },
            "responses": write_errors(json!({
                "200": { "description": "Applied (or recognised as already applied).", "content": json_body(s("BatchReply")) },
                "503": error_response("The store failed or the central is shutting down: nothing applied, resend later.")
            }))
        }),
        ("POST", "/api/v1/agents/{slug}/heartbeat") => json!({
            "tags": ["agents"],
            "operationId": "agentHeartbeat",
            "summary": "A ward agent's heartbeat (every 10 s): version, spool, clock offset",
            "description": "The answer carries the central's clock on receipt; the agent takes \
                            central − midpoint of its round trip as its clock offset and sends \
                            it with the next heartbeat. Offsets above 5 s are logged and \
                            flagged (`clock_skew`); result timestamps are shifted by it.",
            "security": [{ "bearerAuth": [] }],
            "parameters": [
                { "name": "slug", "in": "path", "required": true, "description": "The agent's site slug.", "schema": { "type": "string" } }
            ],
            "requestBody": { "required": true, "content": json_body(json!({
                "type": "object", "required": ["version", "sent_ms"],
                "properties": {
                    "version": { "type": "string" },
                    "sent_ms": { "type": "integer", "format": "int64" },
                    "clock_offset_ms": { "type": "integer", "format": "int64", "nullable": true },
                    "spooled": { "type": "integer" },
                    "dropped": { "type": "integer" }
                }
            })) },
            "responses": write_errors(json!({
                "200": { "description": "Received.", "content": json_body(json!({
                    "type": "object",
                    "properties": {
                        "received_ms": { "type": "integer", "format": "int64" },
                        "last_seq": { "type": "integer" }
                    }
                })) }
            }))
        }),
        ("GET", "/api/v1/agents/{slug}/checks") => json!({
            "tags": ["agents"],
            "operationId": "agentChecks",
            "summary": "The shared-service checks the ward agent runs for the central",
            "description": "Needs the agent's own token (401 / 403 as for results). Each check's \
                            key is what its results are reported as.",
            "security": [{ "bearerAuth": [] }],
            "parameters": [
                { "name": "slug", "in": "path", "required": true, "description": "The agent's site slug.", "schema": { "type": "string" } }
            ],
            "responses": {
                "200": { "description": "The checks.", "content": json_body(json!({
                    "type": "object",
                    "properties": {
                        "site": { "type": "string" },
                        "checks": { "type": "array", "items": {
                            "type": "object", "additionalProperties": true,
                            "properties": {
                                "key": { "type": "string", "example": "service/lgsp/api" },
                                "title": { "type": "string" },
                                "interval_seconds": { "type": "number" },
                                "timeout_seconds": { "type": "number" },
                                "probe": { "type": "object", "additionalProperties": true }
                            }
                        } }
                    }
                })) },
                "401": r("Unauthorized"),
                "403": r("Forbidden")
            }
        }),
        ("GET", "/readyz") => json!({
            "tags": ["meta"],
            "operationId": "readyz",
            "summary": "Readiness: config loaded and checks scheduled",
            "responses": {
                "200": text("Ready: `ready: N checks scheduled`."),
                "503": {
                    "description": "Not ready, or degraded (a store operation is failing); the reason in `error`.",
                    "content": json_body(s("Error"))
                }
            }
        }),
        _ => return None,
    };
    Some(op)
}

/// Schemas of acknowledgement expiry, assignment and team figures (kept apart: one `json!`
/// of every schema exceeds the macro's recursion limit).
fn team_schemas() -> Value {
    let time = |d: &str| json!({ "type": "string", "format": "date-time", "description": d });
    json!({
        "UnackRequest": {
            "type": "object",
            "additionalProperties": false,
            "properties": { "by": { "type": "string", "minLength": 1, "maxLength": MAX_NAME_CHARS, "default": "api" } }
        },
        "AssignRequest": {
            "type": "object",
            "additionalProperties": false,
            "required": ["assignee"],
            "properties": {
                "by": { "type": "string", "minLength": 1, "maxLength": MAX_NAME_CHARS, "default": "api" },
                "assignee": { "type": "string", "nullable": true, "minLength": 1, "maxLength": MAX_NAME_CHARS, "description": "A person's name (free text); null unassigns." }
            }
        },
        "Stat": {
            "type": "object",
            "required": ["count", "median_seconds", "p90_seconds", "max_seconds"],
            "properties": {
                "count": { "type": "integer" },
                "median_seconds": { "type": "number", "nullable": true },
                "p90_seconds": { "type": "number", "nullable": true },
                "max_seconds": { "type": "number", "nullable": true }
            }
        },
        "TeamFigure": {
            "type": "object",
            "required": ["team", "title", "severities", "open", "sites"],
            "properties": {
                "team": { "type": "string", "description": "Team name, or \"*\" for the whole city." },
                "title": { "type": "string" },
                "severities": { "type": "array", "description": "`all`, then `critical`, `warning`.", "items": {
                    "type": "object",
                    "required": ["severity", "incidents", "acknowledged", "resolved", "time_to_acknowledge", "time_to_resolve"],
                    "properties": {
                        "severity": { "type": "string", "enum": ["all", "critical", "warning"] },
                        "incidents": { "type": "integer", "description": "Started in the window." },
                        "acknowledged": { "type": "integer" },
                        "resolved": { "type": "integer" },
                        "time_to_acknowledge": s("Stat"),
                        "time_to_resolve": s("Stat")
                    }
                } },
                "open": {
                    "type": "object",
                    "required": ["count", "acknowledged", "oldest_seconds", "median_seconds"],
                    "properties": {
                        "count": { "type": "integer" },
                        "acknowledged": { "type": "integer" },
                        "oldest_seconds": { "type": "number", "nullable": true },
                        "median_seconds": { "type": "number", "nullable": true }
                    }
                },
                "sites": { "type": "array", "description": "Incidents started in the window per affected site, most first.", "items": {
                    "type": "object", "required": ["site", "incidents"],
                    "properties": { "site": { "type": "string" }, "incidents": { "type": "integer" } }
                } }
            }
        },
        "Cluster": {
            "type": "object",
            "required": ["shared", "instance", "role", "members"],
            "properties": {
                "shared": { "type": "boolean", "description": "PostgreSQL store shared by instances." },
                "instance": { "type": "string", "nullable": true },
                "role": { "type": "string", "enum": ["leader", "standby"] },
                "members": { "type": "array", "items": {
                    "type": "object",
                    "required": ["instance", "role", "started_at", "heartbeat_at", "heartbeat_age_ms", "api"],
                    "properties": {
                        "instance": { "type": "string" },
                        "role": { "type": "string", "enum": ["leader", "standby"] },
                        "started_at": { "type": "integer", "description": "Unix ms (database clock)." },
                        "heartbeat_at": { "type": "integer", "description": "Unix ms (database clock)." },
                        "heartbeat_age_ms": { "type": "integer" },
                        "api": { "type": "string", "nullable": true }
                    }
                } }
            }
        },
        "TeamFigures": {
            "type": "object",
            "required": ["from", "to", "generated_at", "city", "teams"],
            "properties": {
                "from": time("UTC"),
                "to": time("UTC"),
                "generated_at": time("UTC"),
                "city": s("TeamFigure"),
                "teams": { "type": "array", "items": s("TeamFigure") }
            }
        }
    })
}

fn all_schemas() -> Value {
    let mut all = schemas();
    if let (Some(a), Value::Object(b)) = (all.as_object_mut(), team_schemas()) {
        a.extend(b);
    }
    all
}

fn schemas() -> Value {
    let time = |d: &str| json!({ "type": "string", "format": "date-time", "description": d });
    let opt_time = |d: &str| json!({ "type": "string", "format": "date-time", "nullable": true, "description": d });
    let strings = json!({ "type": "array", "items": { "type": "string" } });
    let incident_props = json!({
        "id": { "type": "integer", "format": "int64" },
        "key": { "type": "string", "description": "Stable key of the cause, e.g. site/phuong-ben-thanh/link." },
        "title": { "type": "string", "description": "Vietnamese title." },
        "title_en": { "type": "string" },
        "severity": { "type": "string", "enum": ["critical", "warning"] },
        "scope": { "type": "string", "enum": ["site", "service", "city", "prober"] },
        "state": { "type": "string", "enum": ["open", "acknowledged", "resolved"] },
        "sites": strings.clone(),
        "service": { "type": "string", "nullable": true },
        "teams": strings,
        "started_at": time("UTC"),
        "acknowledged_at": opt_time("UTC"),
        "acknowledged_by": { "type": "string", "nullable": true },
        "ack_expires_at": opt_time("When the current acknowledgement lapses (UTC); null without expires_in."),
        "assigned_to": { "type": "string", "nullable": true, "description": "The person the incident is assigned to." },
        "resolved_at": opt_time("UTC")
    });
    let incident_required = json!([
        "id",
        "key",
        "title",
        "title_en",
        "severity",
        "scope",
        "state",
        "sites",
        "service",
        "teams",
        "started_at",
        "acknowledged_at",
        "acknowledged_by",
        "ack_expires_at",
        "assigned_to",
        "resolved_at"
    ]);
    let mut detail_props = incident_props.clone();
    detail_props["events"] =
        json!({ "type": "array", "items": s("Event"), "description": "Timeline, oldest first." });
    detail_props["notes"] =
        json!({ "type": "array", "items": s("Note"), "description": "Oldest first." });
    let mut detail_required = incident_required.clone();
    if let Some(a) = detail_required.as_array_mut() {
        a.push(json!("events"));
        a.push(json!("notes"));
    }
    let maint_props = json!({
        "scope": { "type": "string", "enum": ["site", "service", "city"], "description": "What the window covers. Optional with site or service; required as \"city\" for a window over the whole city (no site, no service)." },
        "site": { "type": "string", "nullable": true, "description": "Site slug (not with service)." },
        "service": { "type": "string", "nullable": true, "description": "Shared-service slug (not with site)." }
    });
    let mut all = json!({
        "Error": {
            "type": "object",
            "required": ["error"],
            "properties": { "error": { "type": "string", "description": "What is wrong, naming the parameter or field." } }
        },
        "IncidentSummary": {
            "type": "object",
            "description": "An incident in a listing (without timeline and notes).",
            "required": incident_required,
            "properties": incident_props
        },
        "Incident": {
            "type": "object",
            "required": detail_required,
            "properties": detail_props
        },
        "IncidentPage": {
            "type": "object",
            "required": ["items", "next_cursor"],
            "properties": {
                "items": { "type": "array", "items": s("IncidentSummary") },
                "next_cursor": { "type": "integer", "format": "int64", "nullable": true, "description": "Pass as cursor for the next page; null on the last page." }
            }
        },
        "Event": {
            "type": "object",
            "required": ["id", "incident_id", "at", "kind", "check", "state", "message", "evidence"],
            "properties": {
                "id": { "type": "integer", "format": "int64" },
                "incident_id": { "type": "integer", "format": "int64" },
                "at": time("UTC"),
                "kind": { "type": "string", "enum": ["opened", "state_change", "attached", "sites_changed", "acknowledged", "note", "resolved", "resumed", "unacknowledged", "assigned", "escalated"], "description": "`escalated`: a [[team.escalation]] step fired (evidence: team, step, after_seconds, notify); `unacknowledged`: withdrawn or lapsed (evidence: by, reason withdrawn|expired); `assigned`: evidence by, assignee (null = unassigned), previous." },
                "check": { "type": "string", "nullable": true, "description": "Check key, e.g. site/phuong-ben-thanh/endpoint." },
                "state": { "type": "string", "nullable": true, "description": "Health state the check moved to (down, degraded, up …)." },
                "message": { "type": "string" },
                "evidence": { "type": "object", "nullable": true, "additionalProperties": true, "description": "Measured evidence: reason, status code, rtt, loss, jitter …" }
            }
        },
        "Note": {
            "type": "object",
            "required": ["id", "at", "author", "text"],
            "properties": {
                "id": { "type": "integer", "format": "int64" },
                "at": time("UTC"),
                "author": { "type": "string" },
                "text": { "type": "string" }
            }
        },
        "AckConflict": {
            "type": "object",
            "required": ["error", "acknowledged_by"],
            "properties": {
                "error": { "type": "string" },
                "acknowledged_by": { "type": "string", "description": "Who holds the acknowledgement." },
                "acknowledged_at": opt_time("UTC")
            }
        },
        "AckRequest": {
            "type": "object",
            "additionalProperties": false,
            "properties": {
                "by": { "type": "string", "minLength": 1, "maxLength": MAX_NAME_CHARS, "default": "api" },
                "expires_in": { "type": "string", "description": "Duration after which the acknowledgement lapses (above zero, at most 7 days), e.g. \"30m\", \"2h\".", "example": "30m" }
            }
        },
        "NoteRequest": {
            "type": "object",
            "additionalProperties": false,
            "required": ["author", "text"],
            "properties": {
                "author": { "type": "string", "minLength": 1, "maxLength": MAX_NAME_CHARS },
                "text": { "type": "string", "minLength": 1, "maxLength": MAX_NOTE_CHARS }
            }
        },
        "MaintenanceRequest": {
            "type": "object",
            "additionalProperties": false,
            "required": ["starts_at", "ends_at", "reason"],
            "properties": {
                "scope": maint_props["scope"],
                "site": maint_props["site"],
                "service": maint_props["service"],
                "starts_at": { "type": "string", "description": "RFC 3339 or local Asia/Ho_Chi_Minh \"YYYY-MM-DD HH:MM\".", "example": "2026-11-28 22:00" },
                "ends_at": { "type": "string", "description": "After starts_at, not in the past, at most [api] max_maintenance (default 7 days) after starts_at; same formats.", "example": "2026-11-29 02:00" },
                "reason": { "type": "string", "minLength": 1, "maxLength": MAX_REASON_CHARS },
                "created_by": { "type": "string", "minLength": 1, "maxLength": MAX_NAME_CHARS, "default": "api" }
            }
        },
        "MaintenanceWindow": {
            "type": "object",
            "required": ["id", "scope", "site", "service", "starts_at", "ends_at", "reason", "created_by"],
            "properties": {
                "id": { "type": "integer", "format": "int64" },
                "scope": maint_props["scope"],
                "site": maint_props["site"],
                "service": maint_props["service"],
                "starts_at": time("UTC"),
                "ends_at": time("UTC"),
                "reason": { "type": "string" },
                "created_by": { "type": "string" }
            }
        },
        "MaintenanceList": {
            "type": "object",
            "required": ["items"],
            "properties": { "items": { "type": "array", "items": s("MaintenanceWindow") } }
        },
        "Site": {
            "type": "object",
            "additionalProperties": true,
            "properties": {
                "code": { "type": "string" },
                "slug": { "type": "string" },
                "name": { "type": "string" },
                "kind": { "type": "string", "enum": ["phuong", "xa", "dac-khu"] },
                "former_province": { "type": "string" },
                "former_district": { "type": "string" },
                "island": { "type": "boolean" },
                "lat": { "type": "number" },
                "lon": { "type": "number" },
                "link_class": { "type": "string" }
            }
        },
        "Phases": {
            "type": "object",
            "description": "Time of each phase of an HTTP or TCP run, in seconds (f64); null = phase not reached.",
            "properties": {
                "resolve": { "type": "number", "format": "double", "nullable": true },
                "connect": { "type": "number", "format": "double", "nullable": true },
                "tls": { "type": "number", "format": "double", "nullable": true },
                "processing": { "type": "number", "format": "double", "nullable": true, "description": "Request written → first response byte." },
                "transfer": { "type": "number", "format": "double", "nullable": true, "description": "First response byte → body read." }
            }
        },
        "Check": {
            "type": "object",
            "additionalProperties": true,
            "properties": {
                "key": { "type": "string" },
                "site": { "type": "string", "nullable": true },
                "service": { "type": "string", "nullable": true },
                "name": { "type": "string" },
                "kind": { "type": "string" },
                "role": { "type": "string" },
                "title": { "type": "string" },
                "interval_seconds": { "type": "number" },
                "timeout_seconds": { "type": "number" },
                "last": {
                    "type": "object", "nullable": true, "additionalProperties": true,
                    "description": "The last run: at, success, duration_seconds, reason, message, details (per kind; every duration in it — details.phases.resolve/connect/tls/processing/transfer, rtt, jitter … — is seconds as a number, null when not reached).",
                    "properties": {
                        "duration_seconds": { "type": "number", "format": "double" },
                        "details": {
                            "type": "object", "additionalProperties": true,
                            "properties": { "phases": s("Phases") }
                        }
                    }
                },
                "consecutive_failures": { "type": "integer" },
                "runs": { "type": "integer" }
            }
        }
    });
    if let (Some(all), Value::Object(more)) = (all.as_object_mut(), sweep_schemas()) {
        all.extend(more);
    }
    all
}

/// The sweep's and the ward reports' schemas.
fn sweep_schemas() -> Value {
    let time = |d: &str| json!({ "type": "string", "format": "date-time", "description": d });
    let opt_time = |d: &str| json!({ "type": "string", "format": "date-time", "nullable": true, "description": d });
    json!({
        "Sweep": {
            "type": "object",
            "description": "The pre-conference sweep's table.",
            "required": ["started_at", "duration_seconds", "total", "ready", "not_ready", "sites"],
            "properties": {
                "started_at": time("When the sweep started."),
                "duration_seconds": { "type": "number", "format": "double" },
                "total": { "type": "integer" },
                "ready": { "type": "integer" },
                "not_ready": { "type": "integer" },
                "sites": { "type": "array", "items": s("SweepRow"), "description": "In inventory order." }
            }
        },
        "SweepRow": {
            "type": "object",
            "required": ["site", "name", "former_province", "ready", "reason", "reason_en", "checks", "last_incident"],
            "properties": {
                "site": { "type": "string" },
                "name": { "type": "string" },
                "former_province": { "type": "string" },
                "ready": { "type": "boolean" },
                "reason": { "type": "string", "nullable": true, "description": "Why not ready (Vietnamese); null when ready." },
                "reason_en": { "type": "string", "nullable": true },
                "checks": { "type": "array", "items": {
                    "type": "object",
                    "properties": {
                        "key": { "type": "string" },
                        "role": { "type": "string", "enum": ["link", "video"] },
                        "title": { "type": "string" },
                        "success": { "type": "boolean" },
                        "reason": { "type": "string", "nullable": true },
                        "message": { "type": "string", "nullable": true },
                        "duration_seconds": { "type": "number", "format": "double" }
                    }
                } },
                "last_incident": {
                    "type": "object", "nullable": true,
                    "description": "The site's most recent incident, any state.",
                    "properties": {
                        "id": { "type": "integer", "format": "int64" },
                        "title": { "type": "string" },
                        "title_en": { "type": "string" },
                        "state": { "type": "string", "enum": ["open", "acknowledged", "resolved"] },
                        "started_at": time("Start."),
                        "resolved_at": opt_time("End, when resolved.")
                    }
                }
            }
        },
        "ReportOutcome": {
            "type": "object",
            "required": ["incident_id", "key", "attached", "created"],
            "properties": {
                "incident_id": { "type": "integer", "format": "int64" },
                "key": { "type": "string", "example": "site/phuong-ben-thanh/link" },
                "attached": { "type": "boolean", "description": "Attached to an open automatic incident of the site." },
                "created": { "type": "boolean", "description": "A `reported` incident was opened." }
            }
        }
    })
}

/// The schemas of the ward agents' endpoints (a separate `json!`: one would hit the macro
/// recursion limit).
fn agent_schemas(mut base: Value) -> Value {
    let opt_time = |d: &str| json!({ "type": "string", "format": "date-time", "nullable": true, "description": d });
    let extra = json!({
        "Agent": {
            "type": "object",
            "properties": {
                "site": { "type": "string" },
                "name": { "type": "string" },
                "up": { "type": "boolean" },
                "last_seen": opt_time("Last heartbeat or batch since the central started."),
                "version": { "type": "string", "nullable": true },
                "clock_offset_ms": { "type": "integer", "format": "int64", "nullable": true, "description": "Central clock − agent clock." },
                "clock_skew": { "type": "boolean", "description": "|offset| above 5 s." },
                "spooled": { "type": "integer" },
                "dropped": { "type": "integer" },
                "last_seq": { "type": "integer" },
                "applied": { "type": "integer" },
                "missing": { "type": "integer" }
            }
        },
        "ResultBatch": {
            "type": "object", "required": ["results"],
            "properties": {
                "results": { "type": "array", "items": {
                    "type": "object",
                    "required": ["seq", "check", "finished_ms", "success", "duration_seconds"],
                    "properties": {
                        "seq": { "type": "integer", "minimum": 1 },
                        "check": { "type": "string", "example": "service/lgsp/api" },
                        "finished_ms": { "type": "integer", "format": "int64", "description": "Agent clock, Unix ms." },
                        "success": { "type": "boolean" },
                        "duration_seconds": { "type": "number", "format": "double" },
                        "reason": { "type": "string", "description": "Required when success is false (a probe failure reason)." },
                        "message": { "type": "string" }
                    }
                } },
                "spooled": { "type": "integer" },
                "dropped": { "type": "integer" }
            }
        },
        "BatchReply": {
            "type": "object",
            "properties": {
                "applied": { "type": "integer" },
                "duplicates": { "type": "integer" },
                "ignored": { "type": "integer", "description": "Results of the agent's local checks (not recorded centrally)." },
                "last_seq": { "type": "integer" }
            }
        }
    });
    if let (Some(m), Value::Object(e)) = (base.as_object_mut(), extra) {
        m.extend(e);
    }
    base["Check"]["properties"]["vantage"] = json!({
        "type": "string", "nullable": true,
        "description": "`site:<slug>`: run by that ward's agent; null: by this instance."
    });
    base
}

fn error_response(description: &str) -> Value {
    json!({ "description": description, "content": json_body(s("Error")) })
}

/// The whole document.
/// Routes that read or write the incident store: with a shared store (PostgreSQL) that
/// cannot be reached they answer 503 `Unavailable` (SQLite failures stay 500).
const STORE_ROUTES: &[(&str, &str)] = &[
    ("GET", "/api/v1/incidents"),
    ("GET", "/api/v1/incidents/{id}"),
    ("POST", "/api/v1/incidents/{id}/ack"),
    ("POST", "/api/v1/incidents/{id}/unack"),
    ("POST", "/api/v1/incidents/{id}/assign"),
    ("POST", "/api/v1/incidents/{id}/notes"),
    ("GET", "/api/v1/incidents/stream"),
    ("GET", "/api/v1/maintenance"),
    ("POST", "/api/v1/maintenance"),
    ("DELETE", "/api/v1/maintenance/{id}"),
    ("POST", "/api/v1/maintenance/{id}/end"),
    ("POST", "/api/v1/reports"),
    ("POST", "/api/v1/reports/{id}/close"),
    ("GET", "/api/v1/readiness"),
    ("GET", "/api/v1/teams"),
    ("GET", "/api/v1/cluster"),
    ("POST", "/api/v1/agents/{slug}/results"),
    ("GET", "/readiness"),
    ("GET", "/incidents.atom"),
];

pub fn spec() -> Value {
    let mut paths = serde_json::Map::new();
    for (method, path) in ROUTES {
        let mut op = operation(method, path).unwrap_or_else(|| json!({ "responses": {} }));
        if STORE_ROUTES.contains(&(*method, *path)) {
            if let Some(m) = op["responses"].as_object_mut() {
                m.entry("503").or_insert_with(|| r("Unavailable"));
            }
        }
        let entry = paths.entry(path.to_string()).or_insert_with(|| json!({}));
        entry[method.to_ascii_lowercase()] = op;
    }
    let mut unauthorized =
        error_response("No `Authorization: Bearer <token>` header, or a malformed one.");
    unauthorized["headers"] = json!({
        "WWW-Authenticate": { "description": "`Bearer realm=\"lienthong\"`", "schema": { "type": "string" } }
    });
    json!({
        "openapi": "3.0.3",
        "info": {
            "title": "lienthong",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Prober of the commune-level sites of Ho Chi Minh City: incidents \
                            (one per real cause), their timelines, maintenance windows and the \
                            live status of every check. Times are served as RFC 3339 in UTC; \
                            durations as seconds (a JSON number, f64). \
                            Write endpoints need the bearer token from the environment variable \
                            named by [api] token_env.",
            "license": { "name": "Apache-2.0" }
        },
        "tags": [
            { "name": "incidents" },
            { "name": "maintenance" },
            { "name": "status" },
            { "name": "pages" },
            { "name": "cluster" },
            { "name": "meta" }
        ],
        "paths": paths,
        "components": {
            "securitySchemes": {
                "bearerAuth": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "The token in the environment variable named by [api] token_env. Unset → write endpoints answer 403. The /api/v1/agents/{slug}/… endpoints take the agent's own token instead ([[agent]] token_file or token_sha256)."
                }
            },
            "responses": {
                "BadRequest": error_response("Bad parameter or body; `error` says which and what is allowed."),
                "Unauthorized": unauthorized,
                "Forbidden": error_response("Wrong token, or the write API is disabled (no token configured)."),
                "NotFound": error_response("No such incident, maintenance window or site."),
                "PayloadTooLarge": error_response(&format!("Request body over {} KiB.", BODY_LIMIT / 1024)),
                "InternalError": error_response("The incident store failed; details in the server log."),
                "Unavailable": error_response("The shared store (PostgreSQL) cannot be reached now: nothing was read or applied; `error` says why. Try again later.")
            },
            "schemas": agent_schemas(all_schemas())
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_routes_are_routes_and_document_503() {
        let doc = spec();
        for (method, path) in STORE_ROUTES {
            assert!(ROUTES.contains(&(*method, *path)), "{method} {path}");
            let op = &doc["paths"][*path][method.to_ascii_lowercase()];
            assert!(op["responses"]["503"].is_object(), "{method} {path}");
        }
    }

    #[test]
    fn every_route_has_an_operation() {
        for (m, p) in ROUTES {
            assert!(operation(m, p).is_some(), "{m} {p} is not documented");
        }
        let doc = spec();
        let n: usize = doc["paths"]
            .as_object()
            .unwrap()
            .values()
            .map(|v| v.as_object().unwrap().len())
            .sum();
        assert_eq!(n, ROUTES.len());
    }

    #[test]
    fn refs_resolve() {
        let doc = spec();
        let text = doc.to_string();
        for part in text.split("\"$ref\":\"#/components/").skip(1) {
            let target = &part[..part.find('"').unwrap()];
            let (kind, name) = target.split_once('/').unwrap();
            assert!(
                doc["components"][kind].get(name).is_some(),
                "dangling $ref {target}"
            );
        }
    }
}
