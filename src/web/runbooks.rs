//! The runbooks (docs/runbooks/*.md, built into the binary) as HTML pages at `/runbooks/`, so
//! every alert and incident links to a page that exists even before the operator publishes the
//! docs elsewhere (`[incidents] runbook_base_url`).

use axum::extract::Path;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use maud::{html, PreEscaped, DOCTYPE};

use super::AppState;

/// (page, Markdown) of every runbook; `README` is the index.
pub const PAGES: &[(&str, &str)] = &[
    ("README", include_str!("../../docs/runbooks/README.md")),
    (
        "lienthongincident",
        include_str!("../../docs/runbooks/lienthongincident.md"),
    ),
    ("sitedown", include_str!("../../docs/runbooks/sitedown.md")),
    (
        "sitelinkdegraded",
        include_str!("../../docs/runbooks/sitelinkdegraded.md"),
    ),
    (
        "islandlinklosshigh",
        include_str!("../../docs/runbooks/islandlinklosshigh.md"),
    ),
    (
        "sitecheckdown",
        include_str!("../../docs/runbooks/sitecheckdown.md"),
    ),
    (
        "sharedservicedown",
        include_str!("../../docs/runbooks/sharedservicedown.md"),
    ),
    (
        "certificateexpiringsoon",
        include_str!("../../docs/runbooks/certificateexpiringsoon.md"),
    ),
    (
        "proberisolation",
        include_str!("../../docs/runbooks/proberisolation.md"),
    ),
    (
        "proberdown",
        include_str!("../../docs/runbooks/proberdown.md"),
    ),
    (
        "proberstale",
        include_str!("../../docs/runbooks/proberstale.md"),
    ),
    (
        "schedulerlagging",
        include_str!("../../docs/runbooks/schedulerlagging.md"),
    ),
    (
        "notificationsfailing",
        include_str!("../../docs/runbooks/notificationsfailing.md"),
    ),
    (
        "configreloadfailed",
        include_str!("../../docs/runbooks/configreloadfailed.md"),
    ),
];

const CSS: &str = "body{font:16px/1.5 system-ui,sans-serif;max-width:52rem;margin:1.5rem auto;padding:0 1rem;color:#1a1a1a}code{background:#f0f0f0;padding:0 .2em;border-radius:3px}h2{margin-top:2rem;border-top:1px solid #ccc;padding-top:1rem}a{color:#1f4b91}";

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/runbooks/", get(|| async { page("README") }))
        .route(
            "/runbooks/{page}",
            get(|Path(p): Path<String>| async move { page(&p) }),
        )
}

/// The Markdown of a page, by name with or without `.md` (the pages link to each other as
/// `sitedown.md`, which works both here and on a git host).
pub fn markdown(name: &str) -> Option<&'static str> {
    let name = name.strip_suffix(".md").unwrap_or(name);
    PAGES.iter().find(|(n, _)| *n == name).map(|(_, md)| *md)
}

fn page(name: &str) -> Response {
    let Some(md) = markdown(name) else {
        return super::error(StatusCode::NOT_FOUND, "no such runbook; see /runbooks/");
    };
    let title = md
        .lines()
        .next()
        .unwrap_or("")
        .trim_start_matches('#')
        .trim();
    let mut body = String::with_capacity(md.len() * 2);
    pulldown_cmark::html::push_html(&mut body, pulldown_cmark::Parser::new(md));
    // Index links are relative to /runbooks/ whichever URL form showed the index.
    let base = if name.trim_end_matches(".md") == "README" {
        "/runbooks/"
    } else {
        ""
    };
    Html(
        html! {
            (DOCTYPE)
            html lang="vi" {
                head {
                    meta charset="utf-8";
                    meta name="viewport" content="width=device-width, initial-scale=1";
                    @if !base.is_empty() { base href=(base); }
                    title { (title) }
                    style { (PreEscaped(CSS)) }
                }
                body {
                    p { a href="/runbooks/" { "Sổ tay xử lý / Runbooks" } " · " a href="/" { "Liên thông" } }
                    (PreEscaped(body))
                }
            }
        }
        .into_string(),
    )
    .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every page the incidents and the rules link to exists, and every runbook file in
    /// docs/runbooks is served.
    #[test]
    fn every_linked_page_exists_and_every_file_is_served() {
        for kind in [
            "link_down",
            "link_degraded",
            "check_down",
            "site_slow",
            "service_down",
            "service_slow",
            "certificate",
            "prober_isolation",
            "reported",
            "other",
        ] {
            let page = crate::incidents::open_series::runbook_page(kind);
            assert!(markdown(page).is_some(), "{kind} → {page}");
        }
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/runbooks");
        for entry in std::fs::read_dir(dir).unwrap() {
            let name = entry.unwrap().file_name().into_string().unwrap();
            assert!(markdown(&name).is_some(), "{name} is not in PAGES");
        }
    }
}
