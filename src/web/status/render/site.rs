//! The site page (`/sites/{slug}`): its checks, their numbers and its incidents.

use super::*;

pub fn render_site(d: &SiteData, lang: Lang) -> Markup {
    let s = d.site;
    let teams = d.inv.teams_of_site(s);
    let team_titles: Vec<String> = d
        .inv
        .teams
        .iter()
        .filter(|t| teams.contains(&t.name))
        .map(|t| t.title.clone())
        .collect();
    let verdict = d
        .report
        .and_then(|r| r.sites.iter().find(|x| x.slug == s.slug));
    let (pvi, pen) = readiness::province_name(&s.former_province);
    let alt = format!("/sites/{}{}", s.slug, lang.pick("?lang=en", ""));
    // The charts span the data there is: from its first minute (at least 30 minutes, at most
    // CHART_HOURS back).
    let to_m = d.now.div_euclid(60_000) + 1;
    let first = d
        .series
        .values()
        .filter_map(|v| v.first().map(|p| p.minute))
        .min()
        .unwrap_or(to_m);
    let from_m = (first - 1).clamp(to_m - CHART_HOURS * 60, to_m - 30);
    let open: Vec<&Incident> = d
        .incidents
        .iter()
        .filter(|i| i.resolved_at.is_none())
        .collect();
    let recent: Vec<&Incident> = d
        .incidents
        .iter()
        .filter(|i| i.resolved_at.is_some())
        .collect();
    let body = html! {
        main {
            p { a href={ "/" (lang_suffix(lang, true)) } { "← " (lang.pick("Tất cả xã, phường, đặc khu", "All sites")) } }
            section.panel #site data-slug=(s.slug) data-status=(d.status.as_str()) {
                h2 style="font-size:1.4rem" { (s.name) " " (status_badge(d.status, lang))
                    @if s.island { " " span.isl { (lang.pick("Đơn vị đảo", "Island unit")) } } }
                dl.meta {
                    dt { (lang.pick("Mã đơn vị", "Code")) } dd { (s.code) }
                    dt { (lang.pick("Khu vực cũ", "Former area")) } dd { (s.former_district) ", " (lang.pick(&pvi, &pen)) }
                    dt { (lang.pick("Loại đường truyền", "Link class")) } dd.link-class data-class=(s.link_class) { (lang.pick(d.inv.class_display(&s.link_class), &s.link_class)) }
                    dt { (lang.pick("Tọa độ", "Coordinates")) } dd { (format!("{:.4}, {:.4}", s.lat, s.lon)) }
                    @if !team_titles.is_empty() { dt { (lang.pick("Tổ chuyên trách", "Teams")) } dd { (team_titles.join(", ")) } }
                }
            }
            @for w in d.maintenance {
                section.panel.s-maintenance #site-maintenance {
                    h2 { (lang.pick("Đang bảo trì", "Under maintenance"))
                        @if w.city_wide { " " span.muted.small { (lang.pick("(toàn thành phố)", "(city-wide)")) } } }
                    dl.meta {
                        dt { (lang.pick("Lý do", "Reason")) } dd.m-reason { (w.reason) }
                        dt { (lang.pick("Kết thúc", "Ends")) } dd.m-end { @match w.ends_at {
                            Some(e) => { (format_local(e)) " " span.muted.small { "(" (lang.pick("giờ Việt Nam", "Vietnam time")) ")" } }
                            None => { (lang.pick("theo lịch định kỳ trong probes.toml", "per the recurring schedule in probes.toml")) }
                        } }
                        dt { (lang.pick("Người tạo", "Created by")) } dd.m-by { (w.by) }
                    }
                }
            }
            @if d.inv.agents.iter().any(|a| a.site == s.slug) { (ward_view(d, lang)) }
            @if let (Some(v), Some(r)) = (verdict, d.report) {
                section.panel #site-readiness data-verdict=(v.verdict.as_str()) {
                    h2 { (lang.pick("Sẵn sàng", "Readiness")) " " (verdict_badge(v.verdict, lang)) " "
                        span.muted.small { (r.from_local) " → " (r.to_local) } }
                    @if !v.reasons.is_empty() { ul { @for f in &v.reasons { li { (f.text(lang)) } } } }
                    @if !v.notes.is_empty() { ul.small.muted { @for f in &v.notes { li { (f.text(lang)) } } } }
                    table {
                        thead { tr {
                            th { (lang.pick("Kiểm tra", "Check")) } th { (lang.pick("Kết quả", "Verdict")) }
                            th.n { (lang.pick("Khả dụng", "Availability")) } th.n { (lang.pick("Mục tiêu", "Target")) }
                            th.n { "p" (format!("{:.0}", r.criteria.latency_quantile * 100.0)) } th.n { (lang.pick("Ngưỡng", "Limit")) }
                            th.n { (lang.pick("Mất gói", "Loss")) } th.n { (lang.pick("Số phút có dữ liệu", "Minutes with data")) }
                        } }
                        tbody {
                            @for c in &v.checks {
                                tr {
                                    td { (d.checks.iter().find(|x| x.check.id.key() == c.key).map_or_else(|| c.title.clone(), |x| check_title(&x.check, lang))) } td { (verdict_badge(c.verdict, lang)) }
                                    td.n { (opt(c.availability.map(|a| pct(a, lang)))) } td.n { (pct(c.target, lang)) }
                                    td.n { (opt(c.latency_quantile_ms.map(|v| fmt_ms(v, lang)))) } td.n { (opt(c.latency_limit_ms.map(|v| fmt_ms(v, lang)))) }
                                    td.n { (opt(c.loss.map(|v| pct(v, lang)))) } td.n { (c.observed_minutes) "/" (c.expected_minutes) }
                                }
                            }
                        }
                    }
                    p #ward-criterion data-verdict=[v.ward_services.verdict.map(|x| x.as_str())] {
                        (lang.pick("Phần mềm dùng chung truy cập được từ phường: ", "Shared services reachable from the ward: "))
                        b { (v.ward_services.text(lang)) }
                        @if v.ward_services.applicable { " " span.muted.small { "(" (lang.pick("mục tiêu ", "target ")) (pct(v.ward_services.target, lang)) ")" } }
                    }
                }
            }
            section.panel #checks {
                h2 { (lang.pick("Các kiểm tra và kết quả gần nhất", "Checks and their last results")) }
                table {
                    thead { tr {
                        th { (lang.pick("Kiểm tra", "Check")) } th { (lang.pick("Trạng thái", "State")) }
                        th { (lang.pick("Lần gần nhất", "Last run")) } th { (lang.pick("Kết quả / lý do", "Result / reason")) }
                        th.n { (lang.pick("Thời gian", "Duration")) } th.n { "RTT" } th.n { "Jitter" } th.n { (lang.pick("Mất gói", "Loss")) }
                    } }
                    tbody {
                        @for c in d.checks {
                            (check_row(c, lang))
                        }
                    }
                }
            }
            section.panel #history {
                h2 { (lang.pick("Độ trễ gần đây", "Recent latency")) " " span.muted.small { (local_hms(from_m * 60_000)[..5]) " → " (local_hms(to_m * 60_000)[..5]) (lang.pick(", trung bình mỗi phút", ", per-minute average")) } }
                p.small.muted { (lang.pick("Vạch đỏ dưới trục: phút có lần kiểm tra lỗi; vạch xám: bảo trì; vạch tím: máy giám sát mất kết nối, không quan sát được; đường đứt: ngưỡng suy giảm của loại đường truyền.", "Red marks under the axis: minutes with failed runs; grey: maintenance; purple: the prober itself was cut off (monitor blind); dashed line: the class's degraded threshold.")) }
                @for c in d.checks {
                    @let key = c.check.id.key();
                    @let pts = d.series.get(&key).map(Vec::as_slice).unwrap_or(&[]);
                    div.chart data-check=(key) {
                        h3 style="font-size:.95rem;margin:.6rem 0 .2rem" { (check_title(&c.check, lang)) }
                        (PreEscaped(chart_svg(pts, from_m, to_m, limit_ms(&c.check), lang)))
                        @if c.check.probe.kind() == ProbeKind::Icmp {
                            div.loss-chart {
                                div.small.muted { (lang.pick("Tỷ lệ mất gói mỗi phút", "Packet loss per minute")) }
                                (PreEscaped(loss_chart_svg(pts, from_m, to_m, c.check.degraded.loss, lang)))
                            }
                        }
                    }
                }
            }
            section.panel #site-incidents {
                h2 { (lang.pick("Sự cố đang mở", "Open incidents")) " (" (open.len()) ")" }
                @if open.is_empty() { p.muted { (lang.pick("Không có.", "None.")) } }
                @for i in &open { (incident_line(i, lang)) }
                h2 { (lang.pick("Sự cố gần đây", "Recent incidents")) }
                @if recent.is_empty() { p.muted { (lang.pick("Không có.", "None.")) } }
                @for i in &recent { (incident_line(i, lang)) }
            }
        }
    };
    let title = format!("{} — {}", s.name, status_label(d.status, lang));
    page(lang, &title, d.now, &alt, body)
}

pub(in crate::web::status) fn opt(v: Option<String>) -> String {
    v.unwrap_or_else(|| "–".into())
}

pub(in crate::web::status) fn limit_ms(c: &CheckDef) -> Option<f64> {
    let l = if c.probe.kind() == ProbeKind::Icmp {
        c.degraded.rtt
    } else {
        c.degraded.latency
    };
    (!l.is_zero()).then_some(l.as_secs_f64() * 1000.0)
}

pub(in crate::web::status) fn incident_line(i: &Incident, lang: Lang) -> Markup {
    html! {
        div.inc data-incident=(i.id) {
            span class={"badge " (if i.severity == Severity::Critical { "s-down" } else { "s-degraded" })} { (severity_label(i.severity, lang)) }
            " " a href={ "/api/v1/incidents/" (i.id) } { "#" (i.id) } " " b { (lang.pick(&i.title, &i.title_en)) }
            div.small.muted {
                (format_local(i.started_at))
                @if let Some(r) = i.resolved_at { " → " (format_local(r)) }
                @if i.acknowledged_at.is_some() { " · " (lang.pick("đã tiếp nhận", "acknowledged")) }
            }
        }
    }
}

pub(in crate::web::status) fn check_row(c: &CheckStatus, lang: Lang) -> Markup {
    let st = health_status(c.health);
    let last = c.last.as_ref();
    let (rtt, jitter, loss) = match last.map(|l| &l.details) {
        Some(Details::Icmp(i)) => (
            i.rtt_avg.map(|v| {
                let mut s = fmt_ms(v * 1000.0, lang);
                if let (Some(lo), Some(hi)) = (i.rtt_min, i.rtt_max) {
                    s.push_str(&format!(
                        " ({}–{})",
                        fmt_ms(lo * 1000.0, lang),
                        fmt_ms(hi * 1000.0, lang)
                    ));
                }
                s
            }),
            i.jitter.map(|v| fmt_ms(v * 1000.0, lang)),
            Some(format!(
                "{} ({}/{})",
                pct(i.loss_ratio, lang),
                i.sent - i.received.min(i.sent),
                i.sent
            )),
        ),
        _ => (None, None, None),
    };
    let extra = match last.map(|l| &l.details) {
        Some(Details::Http(h)) => {
            let mut v = Vec::new();
            if let Some(code) = h.status {
                v.push(format!("HTTP {code}"));
            }
            if let Some(exp) = h.cert_earliest_expiry {
                v.push(format!(
                    "{} {}",
                    lang.pick("chứng chỉ hết hạn", "certificate expires"),
                    format_local(exp * 1000)
                ));
            }
            v.join(" · ")
        }
        Some(Details::Transaction(t)) => match &t.failed_step {
            Some(step) => format!("{} {step}", lang.pick("lỗi ở bước", "failed at step")),
            None => format!(
                "{} {}",
                t.steps.len(),
                lang.pick("bước đạt", "steps passed")
            ),
        },
        _ => String::new(),
    };
    html! {
        tr data-check=(c.check.id.key()) data-health=(c.health.as_str()) {
            td { (check_title(&c.check, lang)) div.small.muted { (c.check.probe.kind().as_str()) " · " (c.check.id.name) } }
            td { span class={"badge " (status_class(st))} { (icon(st.as_str())) " " (health_label(c.health, lang)) } }
            td { @if let Some(l) = last { (local_hms(ms_of(l.at))) } @else { "–" } }
            td {
                @match last {
                    Some(_) if c.health == Health::Degraded => {
                        b.breach { (lang.pick("Suy giảm: ", "Degraded: ")) (breached(c, lang)) }
                    }
                    Some(l) if l.success => { (lang.pick("Đạt", "Passed")) }
                    Some(l) => {
                        b { (l.reason.map(|r| reason_label(r, lang)).unwrap_or("")) }
                        @if let Some(m) = &l.message { div.small.muted { (truncate(m, 200)) } }
                    }
                    None => { "–" }
                }
                @if !extra.is_empty() { div.small.muted { (extra) } }
                @if c.consecutive_failures > 1 { div.small { (c.consecutive_failures) (lang.pick(" lần lỗi liên tiếp", " failures in a row")) } }
            }
            td.n { @if let Some(l) = last { (fmt_ms(l.duration_seconds * 1000.0, lang)) } @else { "–" } }
            td.n { (opt(rtt)) } td.n { (opt(jitter)) } td.n { (opt(loss)) }
        }
    }
}

pub(in crate::web::status) fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(n).collect();
        t.push('…');
        t
    }
}
