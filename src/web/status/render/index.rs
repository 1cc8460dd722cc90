//! The status page (`/`): readiness summary, filters, tiles, service and ward panels, the wall
//! view and open incidents.

use super::*;

/// The status page.
pub fn render_index(d: &StatusData, lang: Lang) -> Markup {
    render_index_with(d, lang, &Filters::default())
}

/// The status page with its search and filters preset.
pub fn render_index_with(d: &StatusData, lang: Lang, f: &Filters) -> Markup {
    let inv = &d.inv;
    let mut by_site: HashMap<&str, Vec<&CheckStatus>> = HashMap::new();
    let mut by_service: HashMap<&str, Vec<&CheckStatus>> = HashMap::new();
    for c in &d.checks {
        if let Some(s) = c.check.id.site.as_deref() {
            by_site.entry(s).or_default().push(c);
        } else if let Some(s) = c.check.id.service.as_deref() {
            by_service.entry(s).or_default().push(c);
        }
    }
    let status_of: HashMap<&str, SiteStatus> = inv
        .sites
        .iter()
        .zip(&d.sites)
        .map(|(s, st)| (s.slug.as_str(), *st))
        .collect();
    let count = |st: SiteStatus| d.sites.iter().filter(|s| **s == st).count();
    let n = inv.sites.len();
    let title_vi = format!("Trạng thái kết nối {n} xã, phường, đặc khu");
    let title_en = format!("Connectivity of the {n} communes, wards and special zone");
    let title = lang.pick(&title_vi, &title_en);
    let alt = lang.pick("/?lang=en", "/");
    if f.wall {
        let body = wall_body(d, inv, &by_service, &status_of, lang);
        return page(
            lang,
            title,
            d.now,
            lang.pick("/?lang=en&wall=1", "/?wall=1"),
            body,
        );
    }
    // Former provinces and their districts, in inventory order.
    let mut provinces: Vec<(&str, Districts)> = Vec::new();
    for s in &inv.sites {
        let pi = match provinces.iter().position(|(p, _)| *p == s.former_province) {
            Some(i) => i,
            None => {
                provinces.push((&s.former_province, Vec::new()));
                provinces.len() - 1
            }
        };
        let dists = &mut provinces[pi].1;
        match dists.iter_mut().find(|(d, _)| *d == s.former_district) {
            Some((_, v)) => v.push(s),
            None => dists.push((&s.former_district, vec![s])),
        }
    }
    let body = html! {
        main {
            div.toolbar role="search" {
                label { (lang.pick("Tìm xã, phường: ", "Find a site: "))
                    input #q type="search" autocomplete="off" value=(f.q) placeholder=(lang.pick("vd. Bến Thành, Côn Đảo", "e.g. Ben Thanh, Con Dao")); }
                label { (lang.pick("Khu vực cũ: ", "Former province: "))
                    select #prov {
                        option value="" { (lang.pick("Tất cả", "All")) }
                        @for (p, _) in &provinces {
                            @let (vi, en) = readiness::province_name(p);
                            option value=(p) selected[f.prov == *p] { (lang.pick(&vi, &en)) }
                        }
                    }
                }
                label { input #isl type="checkbox" checked[f.island]; " " (lang.pick("Chỉ đơn vị đảo", "Island units only")) }
            }
            (super::sweep::panel(lang))
            div #live data-generated=(d.now) {
                @if let Some(r) = &d.readiness { (readiness_summary(r, lang)) }
                div.counts role="group" aria-label=(lang.pick("Lọc theo trạng thái", "Filter by status")) {
                    @for st in [SiteStatus::Down, SiteStatus::Degraded, SiteStatus::Maintenance, SiteStatus::Unknown, SiteStatus::Up] {
                        button type="button" class=(status_class(st)) data-filter=(st.as_str()) aria-pressed="false" id={"count-" (st.as_str())} {
                            (icon(st.as_str())) b { (count(st)) } (status_label(st, lang))
                        }
                    }
                    span.muted.small style="align-self:center" {
                        (lang.pick("Đang hiển thị ", "Showing ")) span #shown { (inv.sites.len()) } "/" (inv.sites.len())
                    }
                }
                div.cols {
                    section.panel.map aria-labelledby="map-h" {
                        h2 #map-h { (lang.pick("Bản đồ sơ đồ", "Schematic map")) }
                        (PreEscaped(map_svg(inv, &status_of, lang)))
                    }
                    div {
                        (services_panel(inv, &by_service, lang))
                        (ward_agents_panel(inv, &by_site, lang))
                        (incidents_panel(&d.open, inv, d.now, 30, lang))
                    }
                }
                section #sites aria-labelledby="sites-h" {
                    h2 #sites-h .hide { (lang.pick("Các xã, phường, đặc khu", "Sites")) }
                    @for (p, dists) in &provinces {
                        @let (vi, en) = readiness::province_name(p);
                        @let n: usize = dists.iter().map(|(_, v)| v.len()).sum();
                        section.prov data-province=(p) {
                            h2 { (lang.pick(&vi, &en)) " " span.muted.small { "(" (n) ")" } }
                            @for (dist, sites) in dists {
                                section.dist {
                                    h3 { (dist) }
                                    div.tiles {
                                        @for s in sites {
                                            (tile(s, status_of.get(s.slug.as_str()).copied().unwrap_or(SiteStatus::Unknown),
                                                by_site.get(s.slug.as_str()).map(Vec::as_slice).unwrap_or(&[]), lang))
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        script { (PreEscaped(SCRIPT)) }
    };
    page(lang, title, d.now, alt, body)
}

pub(in crate::web::status) fn tile(
    s: &SiteInfo,
    st: SiteStatus,
    checks: &[&CheckStatus],
    lang: Lang,
) -> Markup {
    let why = match st {
        SiteStatus::Down | SiteStatus::Degraded => site_problem(checks, lang),
        _ => None,
    };
    html! {
        a class={"tile " (status_class(st))} href={ "/sites/" (s.slug) (lang_suffix(lang, true)) }
            data-slug=(s.slug) data-status=(st.as_str()) data-province=(s.former_province)
            data-district=(s.former_district) data-island=(if s.island { "1" } else { "0" }) {
            (icon(st.as_str()))
            span.t {
                span.nm { (s.name) @if s.island { span.isl title=(lang.pick("Đơn vị đảo", "Island unit")) { (lang.pick("Đảo", "Island")) } } }
                span.st { (status_label(st, lang)) }
                @if let Some(w) = why { span.why title=(w) { (w) } }
            }
        }
    }
}

pub(in crate::web::status) fn readiness_summary(r: &Report, lang: Lang) -> Markup {
    let c = &r.city;
    let services_failing = r.services.iter().any(|s| s.verdict == Verdict::NotReady);
    let cls = if c.all_ready {
        "s-up"
    } else if c.collecting_minutes_left.is_some() {
        // Still collecting: not an alarm colour (the not-ready sites are listed below).
        "s-unknown"
    } else if c.not_ready > 0 || services_failing {
        "s-down"
    } else {
        "s-unknown"
    };
    let not_ready: Vec<&readiness::SiteResult> = r
        .sites
        .iter()
        .filter(|s| s.verdict == Verdict::NotReady)
        .collect();
    let report_href = format!(
        "/readiness?from={}&to={}{}",
        r.from,
        r.to,
        lang_suffix(lang, false)
    );
    html! {
        section #readiness class={"panel ready " (cls)} aria-label=(lang.pick("Tình trạng sẵn sàng", "Readiness"))
            data-from=(r.from) data-to=(r.to) data-total=(c.total) data-ready=(c.ready)
            data-not-ready=(c.not_ready) data-insufficient=(c.insufficient_data)
            data-services-ready=(c.services_ready) data-services-total=(c.services_total)
            data-collecting=[c.collecting_minutes_left] {
            div {
                div.headline #readiness-headline { (lang.pick(&c.headline, &c.headline_en)) }
                div.small.muted { (window_words(r, lang)) ": " (r.from_local) " → " (r.to_local) }
            }
            div.facts {
                span { (verdict_badge(Verdict::NotReady, lang)) " " b { (c.not_ready) } }
                span { (verdict_badge(Verdict::InsufficientData, lang)) " " b { (c.insufficient_data) } }
                span { (lang.pick("Dịch vụ dùng chung đạt: ", "Shared services ready: ")) b { (c.services_ready) "/" (c.services_total) } }
                @if c.insufficient_data > 0 {
                    span.small.muted {
                        @if lang == Lang::Vi {
                            "Cần ít nhất " (r.criteria.min_observed_minutes) " phút dữ liệu và " (pct(r.criteria.min_coverage, lang)) " số phút dự kiến để đánh giá."
                        } @else {
                            "Judging needs " (r.criteria.min_observed_minutes) " minutes of data and " (pct(r.criteria.min_coverage, lang)) " of the expected minutes."
                        }
                    }
                }
            }
            @if !not_ready.is_empty() {
                div {
                    b { (lang.pick("Chưa sẵn sàng:", "Not ready:")) }
                    ul.small {
                        @for s in not_ready.iter().take(8) {
                            li {
                                a href={ "/sites/" (s.slug) (lang_suffix(lang, true)) } { (s.name) } ": "
                                (s.reasons.first().map(|f| f.text(lang)).unwrap_or(""))
                            }
                        }
                        @if not_ready.len() > 8 { li { "… " (not_ready.len() - 8) (lang.pick(" nơi khác", " more")) } }
                    }
                }
            }
            div { a href=(report_href) { (lang.pick("Báo cáo đầy đủ", "Full report")) } }
        }
    }
}

/// "Đánh giá 24 giờ qua" / "Judged over the last 24 hours".
pub(in crate::web::status) fn window_words(r: &Report, lang: Lang) -> String {
    let from = crate::localtime::parse_rfc3339(&r.from).unwrap_or(0);
    let to = crate::localtime::parse_rfc3339(&r.to).unwrap_or(0);
    let hours = (to - from) / 3_600_000;
    match (lang, hours % 24 == 0 && hours >= 48) {
        (Lang::Vi, true) => format!("Đánh giá {} ngày qua", hours / 24),
        (Lang::Vi, false) => format!("Đánh giá {hours} giờ qua"),
        (Lang::En, true) => format!("Judged over the last {} days", hours / 24),
        (Lang::En, false) => format!("Judged over the last {hours} hours"),
    }
}

pub(in crate::web::status) fn services_panel(
    inv: &Inventory,
    by_service: &HashMap<&str, Vec<&CheckStatus>>,
    lang: Lang,
) -> Markup {
    html! {
        section.panel #services aria-labelledby="svc-h" {
            h2 #svc-h { (lang.pick("Dịch vụ dùng chung", "Shared services")) }
            @for svc in &inv.services {
                @let checks = by_service.get(svc.slug.as_str()).map(Vec::as_slice).unwrap_or(&[]);
                @let st = checks.iter().map(|c| health_status(c.health)).max_by_key(|s| severity_rank(*s)).unwrap_or(SiteStatus::Unknown);
                div.svc data-service=(svc.slug) data-status=(st.as_str()) {
                    (status_badge(st, lang))
                    div {
                        div.name { (match lang { Lang::Vi => svc.name.as_str(), Lang::En => svc.name_en.as_deref().unwrap_or(&svc.name) }) }
                        div.small.muted {
                            @for (i, c) in checks.iter().enumerate() {
                                @if i > 0 { " · " }
                                (check_title(&c.check, lang)) ": " (health_label(c.health, lang))
                                @if let Some(p) = check_problem(c, lang) { " (" (p) ")" }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// The shared services as one ward's agent sees them: per service, the worst state of its
/// agent-run checks (in `services` order), and the checks.
pub(in crate::web::status) fn ward_matrix<'a>(
    inv: &'a Inventory,
    checks: &[&'a CheckStatus],
) -> Vec<(
    &'a crate::config::ServiceInfo,
    SiteStatus,
    Vec<&'a CheckStatus>,
)> {
    inv.services
        .iter()
        .filter_map(|svc| {
            let mine: Vec<&CheckStatus> = checks
                .iter()
                .copied()
                .filter(|c| {
                    c.check.id.is_agent()
                        && c.check.id.service.as_deref() == Some(svc.slug.as_str())
                })
                .collect();
            let st = mine
                .iter()
                .map(|c| health_status(c.health))
                .max_by_key(|s| severity_rank(*s))?;
            Some((svc, st, mine))
        })
        .collect()
}

pub(in crate::web::status) fn service_name(svc: &crate::config::ServiceInfo, lang: Lang) -> &str {
    match lang {
        Lang::Vi => &svc.name,
        Lang::En => svc.name_en.as_deref().unwrap_or(&svc.name),
    }
}

/// `/`: the wards with an agent, each with one chip per shared service as seen from there and
/// how many fail (nothing when no agent is configured).
pub(in crate::web::status) fn ward_agents_panel(
    inv: &Inventory,
    by_site: &HashMap<&str, Vec<&CheckStatus>>,
    lang: Lang,
) -> Markup {
    html! {
        @if !inv.agents.is_empty() {
            section.panel #ward-agents aria-labelledby="wa-h" {
                h2 #wa-h { (lang.pick("Phần mềm dùng chung nhìn từ phường (máy đo tại phường)", "Shared services as seen from the wards (ward agents)")) }
                @for a in &inv.agents {
                    @let checks = by_site.get(a.site.as_str()).map(Vec::as_slice).unwrap_or(&[]);
                    @let matrix = ward_matrix(inv, checks);
                    @let failing = matrix.iter().filter(|(_, st, _)| matches!(st, SiteStatus::Down | SiteStatus::Degraded)).count();
                    div.ward data-site=(a.site) data-failing=(failing) {
                        a.nm href={ "/sites/" (a.site) (lang_suffix(lang, true)) } { (inv.site(&a.site).map_or(a.site.as_str(), |s| s.name.as_str())) }
                        span class={"badge " (if failing > 0 { "s-down" } else if matrix.is_empty() { "s-unknown" } else { "s-up" })} {
                            @if failing > 0 {
                                (failing) "/" (matrix.len()) " " (lang.pick("lỗi", "failing"))
                            } @else if matrix.is_empty() {
                                (lang.pick("chưa có kết quả", "no results yet"))
                            } @else {
                                (lang.pick("đều truy cập được", "all reachable"))
                            }
                        }
                        @for (svc, st, _) in &matrix {
                            span class={"chip " (status_class(*st))} data-service=(svc.slug) data-state=(st.as_str()) title=(service_name(svc, lang)) {
                                (icon(st.as_str())) (svc.slug)
                            }
                        }
                    }
                }
            }
        }
    }
}

/// `/sites/{slug}`: the shared services as this ward's agent sees them, next to the data
/// centre's view (failing only from here = the ward's path).
pub(in crate::web::status) fn ward_view(d: &SiteData, lang: Lang) -> Markup {
    let mine: Vec<&CheckStatus> = d.checks.iter().filter(|c| c.check.id.is_agent()).collect();
    let matrix = ward_matrix(d.inv, &mine);
    let central = |c: &CheckStatus| {
        let id = c.check.id.central();
        d.central.iter().find(|x| x.check.id == id)
    };
    html! {
        section.panel #ward-view {
            h2 { (lang.pick("Phần mềm dùng chung nhìn từ phường", "Shared services as seen from this ward")) " "
                span.muted.small { (lang.pick("(máy đo đặt tại phường)", "(the ward's agent)")) } }
            @if matrix.is_empty() {
                p.muted { (lang.pick("Chưa có kết quả nào từ máy đo của phường.", "No results from the ward's agent yet.")) }
            } @else {
                table {
                    thead { tr {
                        th { (lang.pick("Phần mềm", "Service")) } th { (lang.pick("Kiểm tra", "Check")) }
                        th { (lang.pick("Từ phường", "From the ward")) } th { (lang.pick("Lần gần nhất", "Last run")) }
                        th { (lang.pick("Kết quả / lý do", "Result / reason")) } th.n { (lang.pick("Độ trễ", "Latency")) }
                        th { (lang.pick("Từ Trung tâm dữ liệu", "From the data centre")) }
                    } }
                    tbody {
                        @for (svc, _, checks) in &matrix {
                            @for c in checks {
                                @let st = health_status(c.health);
                                tr data-service=(svc.slug) data-check=(c.check.id.key()) data-health=(c.health.as_str()) {
                                    td { (service_name(svc, lang)) }
                                    td { (c.check.id.name) }
                                    td { span class={"badge " (status_class(st))} { (icon(st.as_str())) " " (health_label(c.health, lang)) } }
                                    td { @if let Some(l) = &c.last { (local_hms(ms_of(l.at))) } @else { "–" } }
                                    td { @match &c.last {
                                        Some(l) if l.success => { (lang.pick("Đạt", "Passed")) }
                                        Some(l) => {
                                            b { (l.reason.map(|r| reason_label(r, lang)).unwrap_or("")) }
                                            @if let Some(m) = &l.message { div.small.muted { (truncate(m, 120)) } }
                                        }
                                        None => { "–" }
                                    } }
                                    td.n { @if let Some(l) = &c.last { (fmt_ms(l.duration_seconds * 1000.0, lang)) } @else { "–" } }
                                    td { @match central(c) {
                                        Some(x) => { @let cs = health_status(x.health); span class={"badge " (status_class(cs))} { (icon(cs.as_str())) " " (health_label(x.health, lang)) } }
                                        None => { "–" }
                                    } }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// `/?wall=1`: headline and counts, map, shared services and open incidents on one
/// 1920×1080 screen without scrolling (the wall of an operations room); refreshed like `/`.
pub(in crate::web::status) fn wall_body(
    d: &StatusData,
    inv: &Inventory,
    by_service: &HashMap<&str, Vec<&CheckStatus>>,
    status_of: &HashMap<&str, SiteStatus>,
    lang: Lang,
) -> Markup {
    let count = |st: SiteStatus| d.sites.iter().filter(|s| **s == st).count();
    let headline = d.readiness.as_ref().map(|r| {
        let c = &r.city;
        (
            lang.pick(&c.headline, &c.headline_en).to_string(),
            c.collecting_minutes_left.is_some(),
        )
    });
    html! {
        main.wall {
            div #live data-generated=(d.now) {
                div.wall-head {
                    @if let Some((h, collecting)) = &headline {
                        div.headline #readiness-headline data-collecting=[collecting.then_some("1")] { (h) }
                    }
                    div.counts {
                        @for st in [SiteStatus::Down, SiteStatus::Degraded, SiteStatus::Maintenance, SiteStatus::Unknown, SiteStatus::Up] {
                            span class={"badge " (status_class(st))} id={"count-" (st.as_str())} {
                                (icon(st.as_str())) " " b { (count(st)) } " " (status_label(st, lang))
                            }
                        }
                    }
                }
                div.wall-grid {
                    section.panel.map aria-label=(lang.pick("Bản đồ sơ đồ", "Schematic map")) {
                        (PreEscaped(map_svg(inv, status_of, lang)))
                    }
                    div.wall-side {
                        (services_panel(inv, by_service, lang))
                        (incidents_panel(&d.open, inv, d.now, 6, lang))
                    }
                }
            }
        }
        // The same refresh as `/` (a short poll of this URL, hurried by the event stream).
        script { (PreEscaped(SCRIPT)) }
    }
}

/// Order of badness for the roll-up of a service's checks.
pub(in crate::web::status) fn severity_rank(s: SiteStatus) -> u8 {
    match s {
        SiteStatus::Unknown => 0,
        SiteStatus::Up => 1,
        SiteStatus::Maintenance => 2,
        SiteStatus::Degraded => 3,
        SiteStatus::Down => 4,
    }
}

/// How long an incident has lasted: "đã 12 phút", "đã 2 giờ 5 phút", "đã 3 ngày 4 giờ".
pub(in crate::web::status) fn lasted(from: i64, to: i64, lang: Lang) -> String {
    let min = (to - from).max(0) / 60_000;
    let (d, h, m) = (min / 1440, min / 60 % 24, min % 60);
    match lang {
        Lang::Vi if d > 0 => format!("đã {d} ngày {h} giờ"),
        Lang::Vi if h > 0 => format!("đã {h} giờ {m} phút"),
        Lang::Vi => format!("đã {m} phút"),
        Lang::En if d > 0 => format!("for {d} d {h} h"),
        Lang::En if h > 0 => format!("for {h} h {m} min"),
        Lang::En => format!("for {m} min"),
    }
}

/// Titles of the teams owning an incident (their names when a team has no title).
pub(in crate::web::status) fn team_titles(i: &Incident, inv: &Inventory) -> Vec<String> {
    i.teams
        .iter()
        .map(|name| {
            inv.teams
                .iter()
                .find(|t| &t.name == name)
                .map_or_else(|| name.clone(), |t| t.title.clone())
        })
        .collect()
}

pub(in crate::web::status) fn incidents_panel(
    open: &[Incident],
    inv: &Inventory,
    now: i64,
    max: usize,
    lang: Lang,
) -> Markup {
    let mut open: Vec<&Incident> = open.iter().collect();
    open.sort_by_key(|i| (i.severity, std::cmp::Reverse(i.started_at)));
    html! {
        section.panel #incidents aria-labelledby="inc-h" {
            h2 #inc-h { (lang.pick("Sự cố đang mở", "Open incidents")) " (" (open.len()) ")" }
            @if open.is_empty() { p.muted { (lang.pick("Không có sự cố nào đang mở.", "No open incident.")) } }
            @for i in open.iter().take(max) {
                div.inc data-incident=(i.id) {
                    span class={"badge " (if i.severity == Severity::Critical { "s-down" } else { "s-degraded" })} {
                        (icon(if i.severity == Severity::Critical { "down" } else { "degraded" })) " " (severity_label(i.severity, lang))
                    }
                    " "
                    a href={ "/api/v1/incidents/" (i.id) } { "#" (i.id) } " "
                    b { (lang.pick(&i.title, &i.title_en)) }
                    @if i.acknowledged_at.is_some() {
                        " " span.ack title=(lang.pick("Đã có người tiếp nhận", "Someone has taken it")) {
                            "✓ " (lang.pick("Đã tiếp nhận", "Acknowledged"))
                            @if let Some(by) = &i.acknowledged_by { ": " (by) }
                        }
                    }
                    div.small.muted {
                        span.dur { (lasted(i.started_at, now, lang)) } " · "
                        (lang.pick("từ ", "since ")) (format_local(i.started_at))
                        @let teams = team_titles(i, inv);
                        @if !teams.is_empty() { " · " span.team { (lang.pick("Phụ trách: ", "Team: ")) (teams.join(", ")) } }
                        @if i.sites.len() == 1 {
                            @if let Some(s) = inv.site(&i.sites[0]) { " · " a href={ "/sites/" (s.slug) (lang_suffix(lang, true)) } { (s.name) } }
                        } @else if i.sites.len() > 1 {
                            " · " (i.sites.len()) (lang.pick(" xã, phường bị ảnh hưởng", " sites affected"))
                        }
                    }
                }
            }
            @if open.len() > max { p.muted { "… " (open.len() - max) (lang.pick(" sự cố khác", " more")) } }
        }
    }
}
