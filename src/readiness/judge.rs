//! The verdict arithmetic (pure): each check against its class's criteria, sites and
//! services rolled up, groups and the city summed.

use super::*;

pub(super) fn finding(code: &'static str, check: Option<&str>, vi: String, en: String) -> Finding {
    Finding {
        code,
        check: check.map(str::to_string),
        vi,
        en,
    }
}

pub(super) fn is_failure(f: &Finding) -> bool {
    matches!(
        f.code,
        "availability" | "latency" | "loss" | "critical_incident" | "ward_services"
    )
}

pub(super) fn is_insufficient(f: &Finding) -> bool {
    matches!(
        f.code,
        "no_data"
            | "too_short"
            | "low_coverage"
            | "maintenance_only"
            | "monitor_blind_only"
            | "no_checks"
    )
}

/// One check's result.
pub(super) fn judge_check(def: &CheckDef, inv: &Inventory, data: &WindowData) -> CheckResult {
    judge_with(def, inv, data, None)
}

/// One check's result; `ward_target`: an agent-run copy judged for the criterion "shared
/// software reachable from the ward" (availability only, against the ward's target).
pub(super) fn judge_with(
    def: &CheckDef,
    inv: &Inventory,
    data: &WindowData,
    ward_target: Option<f64>,
) -> CheckResult {
    let cfg = &inv.readiness;
    let key = def.id.key();
    let title = def.title.clone();
    // Findings name the check; the site or service is the object they belong to.
    let label = title.clone();
    let label_en = def
        .title_en
        .clone()
        .unwrap_or_else(|| def.id.name.to_string());
    let target = ward_target.unwrap_or_else(|| cfg.target(&def.link_class));
    let icmp = def.probe.kind() == ProbeKind::Icmp;
    let limit = if icmp {
        def.degraded.rtt
    } else {
        def.degraded.latency
    };
    // From a ward the data centre's latency limits do not apply (the ward's link is in the
    // path): that criterion is about reaching the service.
    let latency_limit_ms =
        (!limit.is_zero() && ward_target.is_none()).then_some(limit.as_secs_f64() * 1000.0);
    let loss_limit =
        (icmp && def.degraded.loss > 0.0 && ward_target.is_none()).then_some(def.degraded.loss);
    let empty = CheckAgg::default();
    let w = data.checks.get(&key);
    let a = w.map_or(&empty, |w| &w.agg);
    let first = w.map(|w| w.first_minute);
    let start = first.map_or(data.to_minute, |f| f.max(data.from_minute));
    let span = (data.to_minute - start).max(0) as f64;
    let per_minute = (60.0 / def.interval.as_secs_f64().max(1e-3)).min(1.0);
    // Minutes in maintenance or while the prober was blind are not expected to count.
    let left_out = (a.maint_minutes + a.blind_minutes) as i64;
    let expected = ((span * per_minute).floor() as i64 - left_out).max(0) as u64;
    let observed = a.minutes;
    let coverage = (expected > 0).then(|| (observed as f64 / expected as f64).min(1.0));
    let availability = a.availability();
    let latency_q = a.hist.quantile(cfg.latency_quantile);
    let loss = (a.sent > 0).then(|| a.lost as f64 / a.sent as f64);
    let qname = format!("p{}", (cfg.latency_quantile * 100.0).round());
    let min_obs = cfg.min_observed.0.as_secs().div_ceil(60);

    let mut findings = Vec::new();
    let k = Some(key.as_str());
    // Insufficient data.
    if first.is_none_or(|f| f >= data.to_minute) {
        findings.push(finding(
            "no_data",
            k,
            format!("{label}: chưa có dữ liệu trong khoảng thời gian"),
            format!("{label_en}: no data in the window"),
        ));
    } else if observed == 0 && a.blind_minutes > 0 && expected == 0 {
        findings.push(finding(
            "monitor_blind_only",
            k,
            format!("{label}: máy giám sát mất kết nối suốt khoảng thời gian, không có dữ liệu để đánh giá"),
            format!("{label_en}: the prober was cut off the whole window, nothing to judge"),
        ));
    } else if observed == 0 && a.maint_minutes > 0 && expected == 0 {
        findings.push(finding(
            "maintenance_only",
            k,
            format!("{label}: bảo trì suốt khoảng thời gian, không có dữ liệu để đánh giá"),
            format!("{label_en}: in maintenance the whole window, nothing to judge"),
        ));
    } else if observed < min_obs {
        findings.push(finding(
            "too_short",
            k,
            format!("{label}: mới có {observed} phút dữ liệu (cần ít nhất {min_obs} phút)"),
            format!("{label_en}: only {observed} minute(s) of data (needs {min_obs})"),
        ));
    } else if let Some(c) = coverage.filter(|&c| c < cfg.min_coverage) {
        findings.push(finding(
            "low_coverage",
            k,
            format!(
                "{label}: dữ liệu chỉ phủ {} số phút dự kiến (cần {})",
                pct(c, Lang::Vi),
                pct(cfg.min_coverage, Lang::Vi)
            ),
            format!(
                "{label_en}: data covers only {} of the expected minutes (needs {})",
                pct(c, Lang::En),
                pct(cfg.min_coverage, Lang::En)
            ),
        ));
    }
    let sufficient = findings.is_empty();
    // Criteria: judged once there is `min_observed` of data (a minute or two of a new check
    // proves nothing), even when coverage is low: a failure over the data there is, is one.
    if observed > 0 && observed >= min_obs {
        if let Some(av) = availability.filter(|&av| av < target) {
            findings.push(finding(
                if ward_target.is_some() {
                    "ward_services"
                } else {
                    "availability"
                },
                k,
                format!(
                    "{label}: khả dụng {} < mục tiêu {} ({} lần kiểm tra đạt / {})",
                    pct(av, Lang::Vi),
                    pct(target, Lang::Vi),
                    a.successes,
                    a.attempts
                ),
                format!(
                    "{label_en}: availability {} < target {} ({} of {} runs passed)",
                    pct(av, Lang::En),
                    pct(target, Lang::En),
                    a.successes,
                    a.attempts
                ),
            ));
        }
        if let (Some(q), Some(lim)) = (latency_q, latency_limit_ms) {
            if q > lim {
                let what = if icmp {
                    "RTT"
                } else {
                    "thời gian phản hồi"
                };
                let what_en = if icmp { "RTT" } else { "response time" };
                findings.push(finding(
                    "latency",
                    k,
                    format!(
                        "{label}: {qname} {what} {} > ngưỡng {}",
                        ms(q, Lang::Vi),
                        ms(lim, Lang::Vi)
                    ),
                    format!(
                        "{label_en}: {qname} {what_en} {} > limit {}",
                        ms(q, Lang::En),
                        ms(lim, Lang::En)
                    ),
                ));
            }
        }
        if let (Some(l), Some(lim)) = (loss, loss_limit) {
            if l > lim {
                findings.push(finding(
                    "loss",
                    k,
                    format!(
                        "{label}: mất gói {} > ngưỡng {} ({}/{} gói)",
                        pct(l, Lang::Vi),
                        pct(lim, Lang::Vi),
                        a.lost,
                        a.sent
                    ),
                    format!(
                        "{label_en}: packet loss {} > limit {} ({}/{} packets)",
                        pct(l, Lang::En),
                        pct(lim, Lang::En),
                        a.lost,
                        a.sent
                    ),
                ));
            }
        }
    }
    if a.maint_minutes > 0 {
        findings.push(finding(
            "maintenance",
            k,
            format!("{label}: không tính {} phút bảo trì", a.maint_minutes),
            format!(
                "{label_en}: {} minute(s) of maintenance left out",
                a.maint_minutes
            ),
        ));
    }
    if a.blind_minutes > 0 {
        findings.push(finding(
            "monitor_blind",
            k,
            format!(
                "{label}: không tính {} phút máy giám sát mất kết nối (không quan sát được đơn vị)",
                a.blind_minutes
            ),
            format!(
                "{label_en}: {} minute(s) left out while the prober itself was cut off (monitor blind)",
                a.blind_minutes
            ),
        ));
    }
    let monitored_since = first
        .filter(|&f| f > data.from_minute && f < data.to_minute)
        .map(|f| f * 60_000);
    if let Some(since) = monitored_since {
        findings.push(finding(
            "since",
            k,
            format!("{label}: theo dõi từ {}", format_local(since)),
            format!("{label_en}: monitored since {}", format_local(since)),
        ));
    }
    let verdict = if findings.iter().any(is_failure) {
        Verdict::NotReady
    } else if !sufficient {
        Verdict::InsufficientData
    } else {
        Verdict::Ready
    };
    CheckResult {
        key,
        name: def.id.name.to_string(),
        title,
        role: def.role.as_str(),
        link_class: def.link_class.clone(),
        verdict,
        availability,
        target,
        latency_quantile_ms: latency_q,
        latency_limit_ms,
        latency_avg_ms: (a.lat_n > 0).then(|| a.lat_sum / a.lat_n as f64),
        latency_max_ms: (a.lat_n > 0).then_some(a.lat_max),
        loss,
        loss_limit,
        runs: a.attempts,
        passed: a.successes,
        observed_minutes: observed,
        expected_minutes: expected,
        maintenance_minutes: a.maint_minutes,
        blind_minutes: a.blind_minutes,
        coverage,
        monitored_since: monitored_since.map(format_rfc3339),
        findings,
    }
}

/// Verdict, reasons and notes of an owner from its checks and open critical incidents.
pub(super) fn roll_up(
    checks: &[CheckResult],
    incidents: &[IncidentRef],
    owner: &str,
) -> (Verdict, Vec<Finding>, Vec<Finding>) {
    let mut reasons: Vec<Finding> = incidents
        .iter()
        .map(|i| {
            finding(
                "critical_incident",
                None,
                format!(
                    "Sự cố nghiêm trọng #{} đang mở: {} (từ {})",
                    i.id, i.title, i.started_at_local
                ),
                format!(
                    "Critical incident #{} open: {} (since {})",
                    i.id, i.title_en, i.started_at_local
                ),
            )
        })
        .collect();
    let all: Vec<&Finding> = checks.iter().flat_map(|c| &c.findings).collect();
    reasons.extend(all.iter().filter(|f| is_failure(f)).map(|f| (*f).clone()));
    let notes: Vec<Finding> = all
        .iter()
        .filter(|f| !is_failure(f) && !is_insufficient(f))
        .map(|f| (*f).clone())
        .collect();
    if checks.is_empty() {
        let f = finding(
            "no_checks",
            None,
            format!("{owner}: không có kiểm tra nào"),
            format!("{owner}: no checks configured"),
        );
        return (Verdict::InsufficientData, vec![f], notes);
    }
    if !reasons.is_empty() {
        return (Verdict::NotReady, reasons, notes);
    }
    let missing: Vec<Finding> = all
        .iter()
        .filter(|f| is_insufficient(f))
        .map(|f| (*f).clone())
        .collect();
    if !missing.is_empty() {
        return (Verdict::InsufficientData, missing, notes);
    }
    (Verdict::Ready, Vec::new(), notes)
}

pub(super) fn group_add(g: &mut Group, site: &SiteResult) {
    g.total += 1;
    match site.verdict {
        Verdict::Ready => g.ready += 1,
        Verdict::NotReady => {
            g.not_ready += 1;
            g.not_ready_sites.push(site.slug.clone());
        }
        Verdict::InsufficientData => g.insufficient_data += 1,
    }
}

/// The report over `[from, to)` (Unix ms) at `now`, from the window's history and the critical
/// incidents open at its end. Pure.
pub fn compute(
    inv: &Inventory,
    data: &WindowData,
    critical: &[Incident],
    from: i64,
    to: i64,
    now: i64,
) -> Report {
    let to_eff = to.min(now);
    let mut checks_of: BTreeMap<&str, Vec<&CheckDef>> = BTreeMap::new();
    for c in &inv.checks {
        checks_of.entry(c.id.owner()).or_default().push(c);
    }
    let mut sites = Vec::with_capacity(inv.sites.len());
    for s in &inv.sites {
        // The ward agent's copies of the service checks are judged by their own criterion.
        let checks: Vec<CheckResult> = inv
            .checks
            .iter()
            .filter(|c| c.id.site.as_deref() == Some(s.slug.as_str()) && !c.id.runs_at_ward())
            .map(|c| judge_check(c, inv, data))
            .collect();
        let ward = ward_services(inv, data, &s.slug, inv.readiness.target(&s.link_class));
        let incidents: Vec<IncidentRef> = critical
            .iter()
            .filter(|i| matches!(i.scope, Scope::Site | Scope::City) && i.sites.contains(&s.slug))
            .map(IncidentRef::from)
            .collect();
        let (verdict, reasons, notes) = if ward.applicable {
            let mut all = checks.clone();
            all.extend(ward.checks.iter().cloned());
            roll_up(&all, &incidents, &s.name)
        } else {
            roll_up(&checks, &incidents, &s.name)
        };
        sites.push(SiteResult {
            slug: s.slug.clone(),
            code: s.code.clone(),
            name: s.name.clone(),
            former_province: s.former_province.clone(),
            former_district: s.former_district.clone(),
            island: s.island,
            link_class: s.link_class.clone(),
            teams: inv.teams_of_site(s),
            verdict,
            reasons,
            notes,
            open_critical: incidents,
            checks,
            ward_services: ward,
        });
    }
    let services: Vec<ServiceResult> = inv
        .services
        .iter()
        .map(|svc| {
            let checks: Vec<CheckResult> = inv
                .checks
                .iter()
                .filter(|c| c.id.service.as_deref() == Some(svc.slug.as_str()) && !c.id.is_agent())
                .map(|c| judge_check(c, inv, data))
                .collect();
            let incidents: Vec<IncidentRef> = critical
                .iter()
                .filter(|i| i.scope == Scope::Service && i.service.as_deref() == Some(&svc.slug))
                .map(IncidentRef::from)
                .collect();
            let (verdict, reasons, notes) = roll_up(&checks, &incidents, &svc.name);
            ServiceResult {
                slug: svc.slug.clone(),
                name: svc.name.clone(),
                name_en: svc.name_en.clone(),
                verdict,
                reasons,
                notes,
                open_critical: incidents,
                checks,
            }
        })
        .collect();

    let mut provinces: Vec<Group> = Vec::new();
    for s in &sites {
        let i = match provinces.iter().position(|g| g.key == s.former_province) {
            Some(i) => i,
            None => {
                let (name, name_en) = province_name(&s.former_province);
                provinces.push(Group {
                    key: s.former_province.clone(),
                    name,
                    name_en,
                    total: 0,
                    ready: 0,
                    not_ready: 0,
                    insufficient_data: 0,
                    not_ready_sites: Vec::new(),
                    services_total: 0,
                    services_ready: 0,
                });
                provinces.len() - 1
            }
        };
        group_add(&mut provinces[i], s);
    }
    let teams: Vec<Group> = inv
        .teams
        .iter()
        .map(|t| {
            let mut g = Group {
                key: t.name.clone(),
                name: t.title.clone(),
                name_en: t.title.clone(),
                total: 0,
                ready: 0,
                not_ready: 0,
                insufficient_data: 0,
                not_ready_sites: Vec::new(),
                services_total: 0,
                services_ready: 0,
            };
            for s in sites.iter().filter(|s| s.teams.contains(&t.name)) {
                group_add(&mut g, s);
            }
            for svc in services
                .iter()
                .filter(|s| inv.teams_of_service(&s.slug).contains(&t.name))
            {
                g.services_total += 1;
                g.services_ready += u32::from(svc.verdict == Verdict::Ready);
            }
            g
        })
        .collect();
    let count = |v: Verdict| sites.iter().filter(|s| s.verdict == v).count() as u32;
    let (ready, not_ready, insufficient) = (
        count(Verdict::Ready),
        count(Verdict::NotReady),
        count(Verdict::InsufficientData),
    );
    let total = sites.len() as u32;
    let services_ready = services
        .iter()
        .filter(|s| s.verdict == Verdict::Ready)
        .count() as u32;
    // No site can be ready yet for lack of data (a fresh start; an outage may already make a
    // site not ready): say how long until the first verdicts instead of "0/168 sẵn sàng".
    let collecting_minutes_left = (ready == 0 && insufficient > 0).then(|| {
        let min_obs = inv.readiness.min_observed.0.as_secs().div_ceil(60);
        let most = sites
            .iter()
            .flat_map(|s| s.checks.iter().map(|c| c.observed_minutes))
            .max()
            .unwrap_or(0);
        min_obs.saturating_sub(most).max(1)
    });
    let (headline, headline_en) = match collecting_minutes_left {
        Some(n) => (
            format!("Đang thu thập dữ liệu — còn ~{n} phút"),
            format!("Collecting data — about {n} min left"),
        ),
        None => (
            format!("{ready}/{total} sẵn sàng"),
            format!("{ready}/{total} ready"),
        ),
    };
    let city = CitySummary {
        total,
        ready,
        not_ready,
        insufficient_data: insufficient,
        services_total: services.len() as u32,
        services_ready,
        all_ready: ready == total && services_ready == services.len() as u32,
        headline,
        headline_en,
        collecting_minutes_left,
    };
    let cfg = &inv.readiness;
    let mut availability = BTreeMap::new();
    for class in inv.checks.iter().map(|c| c.link_class.as_str()) {
        availability
            .entry(class.to_string())
            .or_insert(cfg.target(class));
    }
    Report {
        from: format_rfc3339(from),
        to: format_rfc3339(to_eff),
        from_local: format_local(from),
        to_local: format_local(to_eff),
        generated_at: format_rfc3339(now),
        generated_at_local: format_local(now),
        start_rounded: data.start_rounded,
        criteria: Criteria {
            availability,
            default_availability: cfg.default_availability,
            latency_quantile: cfg.latency_quantile,
            min_coverage: cfg.min_coverage,
            min_observed_minutes: cfg.min_observed.0.as_secs().div_ceil(60),
            class_names: inv.class_names.clone(),
        },
        city,
        provinces,
        teams,
        services,
        sites,
        prober_incidents: critical
            .iter()
            .filter(|i| i.scope == Scope::Prober)
            .map(IncidentRef::from)
            .collect(),
        team_figures: None,
    }
}

/// The lowest availability of an owner's checks.
pub fn worst_availability(checks: &[CheckResult]) -> Option<f64> {
    checks
        .iter()
        .filter_map(|c| c.availability)
        .min_by(|a, b| a.total_cmp(b))
}

/// The criterion for one site: its agent-run copies judged against `target`.
pub(super) fn ward_services(
    inv: &Inventory,
    data: &WindowData,
    slug: &str,
    target: f64,
) -> WardServices {
    let has_agent = inv.agents.iter().any(|a| a.site == slug);
    let checks: Vec<CheckResult> = inv
        .checks
        .iter()
        .filter(|c| has_agent && c.id.is_agent() && c.id.site.as_deref() == Some(slug))
        .map(|c| judge_with(c, inv, data, Some(target)))
        .collect();
    let applicable = !checks.is_empty();
    let verdict = applicable.then(|| {
        if checks.iter().any(|c| c.verdict == Verdict::NotReady) {
            Verdict::NotReady
        } else if checks
            .iter()
            .any(|c| c.verdict == Verdict::InsufficientData)
        {
            Verdict::InsufficientData
        } else {
            Verdict::Ready
        }
    });
    WardServices {
        applicable,
        verdict,
        availability: worst_availability(&checks),
        target,
        checks,
    }
}
