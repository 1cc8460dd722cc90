//! A second look at a file that failed to deserialize: serde stops at the first error, so each
//! section and each entry of a list (`[[template]]`, one site of `[inventory] sites`, one
//! `[link_class.NAME]` …) is deserialized on its own to report every entry's first problem, in
//! file order. Spans stay those of the whole file.

use serde::de::DeserializeOwned;
use serde::Deserialize;
use toml::de::{DeTable, DeValue, Deserializer};
use toml::Spanned;

use super::file::*;
use super::{parse_hint, ConfigProblem, Locator};

/// `{ v = <piece> }`, so any type can be checked from a piece of the parsed document.
#[derive(Deserialize)]
struct One<T> {
    #[allow(dead_code)] // only the deserialization's errors matter
    v: T,
}

fn check<T: DeserializeOwned>(
    piece: Spanned<DeValue<'_>>,
    loc: &Locator,
    out: &mut Vec<ConfigProblem>,
) {
    let span = piece.span();
    let mut t = DeTable::new();
    t.insert(Spanned::new(span.clone(), "v".into()), piece);
    if let Err(e) = One::<T>::deserialize(Deserializer::from(Spanned::new(span.clone(), t))) {
        let message = e.message().trim().to_string();
        let hint = parse_hint(&message);
        out.push(loc.problem(e.span().unwrap_or(span), message, hint));
    }
}

/// Each element of an array on its own; anything else as a whole.
fn each<T: DeserializeOwned>(
    value: Spanned<DeValue<'_>>,
    loc: &Locator,
    out: &mut Vec<ConfigProblem>,
) {
    let span = value.span();
    match value.into_inner() {
        DeValue::Array(items) => {
            for item in items {
                check::<T>(item, loc, out);
            }
        }
        other => check::<Vec<T>>(Spanned::new(span, other), loc, out),
    }
}

const KEYS: &[&str] = &[
    "server",
    "scheduler",
    "link_class",
    "template",
    "service",
    "inventory",
    "site_override",
    "site_check",
    "incidents",
    "store",
    "api",
    "team",
    "notify",
    "maintenance",
    "readiness",
    "history",
    "reports",
    "agent",
];

/// Every problem of the file's pieces; empty when the file does not even parse as TOML (the
/// caller reports the syntax error).
pub(super) fn problems(text: &str, loc: &Locator) -> Vec<ConfigProblem> {
    let Ok(root) = DeTable::parse(text) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let mut has = (false, false);
    for (key, value) in root.into_inner() {
        let name: &str = key.get_ref();
        match name {
            "server" => check::<ServerSection>(value, loc, &mut out),
            "scheduler" => check::<SchedulerSection>(value, loc, &mut out),
            "incidents" => check::<IncidentsSection>(value, loc, &mut out),
            "store" => check::<StoreSection>(value, loc, &mut out),
            "api" => check::<ApiSection>(value, loc, &mut out),
            "readiness" => check::<ReadinessSection>(value, loc, &mut out),
            "history" => check::<HistorySection>(value, loc, &mut out),
            "reports" => check::<ReportsSection>(value, loc, &mut out),
            "template" => each::<Template>(value, loc, &mut out),
            "service" => each::<Service>(value, loc, &mut out),
            "site_override" => each::<SiteOverride>(value, loc, &mut out),
            "site_check" => each::<SiteCheck>(value, loc, &mut out),
            "team" => each::<Team>(value, loc, &mut out),
            "notify" => each::<NotifyTarget>(value, loc, &mut out),
            "maintenance" => each::<MaintenanceSpec>(value, loc, &mut out),
            "agent" => each::<AgentSpec>(value, loc, &mut out),
            "link_class" => {
                has.0 = true;
                let span = value.span();
                match value.into_inner() {
                    DeValue::Table(classes) => {
                        for (_, class) in classes {
                            check::<LinkClass>(class, loc, &mut out);
                        }
                    }
                    other => check::<std::collections::BTreeMap<String, LinkClass>>(
                        Spanned::new(span, other),
                        loc,
                        &mut out,
                    ),
                }
            }
            "inventory" => {
                has.1 = true;
                let span = value.span();
                match value.into_inner() {
                    DeValue::Table(mut t) => {
                        if let Some(sites) = t.remove("sites") {
                            each::<Site>(sites, loc, &mut out);
                            // The rest of the section, with the sites checked above.
                            t.insert(
                                Spanned::new(0..0, "sites".into()),
                                Spanned::new(0..0, DeValue::Array(Default::default())),
                            );
                        }
                        check::<InventorySection>(
                            Spanned::new(span, DeValue::Table(t)),
                            loc,
                            &mut out,
                        );
                    }
                    other => check::<InventorySection>(Spanned::new(span, other), loc, &mut out),
                }
            }
            _ => out.push(loc.problem(
                key.span(),
                format!(
                    "unknown section `{name}`, expected one of {}",
                    KEYS.join(", ")
                ),
                parse_hint("unknown field"),
            )),
        }
    }
    for (present, name) in [(has.0, "link_class"), (has.1, "inventory")] {
        if !present {
            out.push(loc.problem(
                0..0,
                format!("missing section `{name}`"),
                Some(format!("add [{name}] (see probes.toml)")),
            ));
        }
    }
    out.sort_by_key(|p| (p.line, p.column));
    out
}
