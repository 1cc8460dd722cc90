//! HTML rendering of the pages: words, frame, status page, map, site page, charts, report.

use super::*;

// ---------------------------------------------------------------------------------------------
// Words

pub(super) fn status_label(s: SiteStatus, lang: Lang) -> &'static str {
    match s {
        SiteStatus::Up => lang.pick("Bình thường", "Up"),
        SiteStatus::Degraded => lang.pick("Suy giảm", "Degraded"),
        SiteStatus::Down => lang.pick("Gián đoạn", "Down"),
        SiteStatus::Maintenance => lang.pick("Bảo trì", "Maintenance"),
        SiteStatus::Unknown => lang.pick("Chưa có dữ liệu", "No data yet"),
    }
}

pub(super) fn health_status(h: Health) -> SiteStatus {
    match h {
        Health::Up | Health::Failing => SiteStatus::Up,
        Health::Degraded => SiteStatus::Degraded,
        Health::Down => SiteStatus::Down,
        Health::Unknown => SiteStatus::Unknown,
    }
}

pub(super) fn health_label(h: Health, lang: Lang) -> &'static str {
    match h {
        Health::Up => lang.pick("Bình thường", "Up"),
        Health::Degraded => lang.pick("Suy giảm", "Degraded"),
        Health::Failing => lang.pick("Lỗi, đang xác nhận", "Failing, confirming"),
        Health::Down => lang.pick("Gián đoạn", "Down"),
        Health::Unknown => lang.pick("Chưa có dữ liệu", "No data yet"),
    }
}

pub(crate) fn reason_label(r: &str, lang: Lang) -> &str {
    let (vi, en) = match r {
        "timeout" => ("quá thời gian chờ", "timeout"),
        "dns" => ("lỗi phân giải tên miền", "name resolution failed"),
        "connect_refused" => ("bị từ chối kết nối", "connection refused"),
        "connect" => ("lỗi kết nối", "connection failed"),
        "tls" => ("lỗi TLS / chứng chỉ", "TLS / certificate error"),
        "cert_expired" => ("chứng chỉ đã hết hạn", "certificate expired"),
        "cert_untrusted" => ("chứng chỉ không được tin cậy", "certificate not trusted"),
        "cert_hostname" => (
            "chứng chỉ không đúng tên miền",
            "certificate for another name",
        ),
        "http_status" => ("mã trạng thái HTTP sai", "unexpected HTTP status"),
        "body_mismatch" => ("nội dung trả về sai", "unexpected body"),
        "body_too_large" => ("nội dung quá lớn", "body too large"),
        "protocol" => ("lỗi giao thức", "protocol error"),
        "expect_mismatch" => ("phản hồi không đúng", "unexpected reply"),
        "packet_loss" => ("mất gói", "packet loss"),
        "dns_rcode" => ("DNS trả mã lỗi", "DNS error rcode"),
        "dns_answer" => ("DNS trả sai địa chỉ", "wrong DNS answer"),
        "permission" => ("thiếu quyền mở socket", "no permission for the socket"),
        "json_mismatch" => ("dữ liệu JSON trả về sai", "unexpected JSON field"),
        "header_mismatch" => ("tiêu đề HTTP sai", "unexpected HTTP header"),
        "too_slow" => ("một bước giao dịch quá chậm", "a transaction step too slow"),
        "extract_failed" => (
            "không lấy được dữ liệu cho bước sau",
            "could not extract a value",
        ),
        other => (other, other),
    };
    lang.pick(vi, en)
}

pub(super) fn status_class(s: SiteStatus) -> &'static str {
    match s {
        SiteStatus::Up => "s-up",
        SiteStatus::Degraded => "s-degraded",
        SiteStatus::Down => "s-down",
        SiteStatus::Maintenance => "s-maintenance",
        SiteStatus::Unknown => "s-unknown",
    }
}

pub(super) fn verdict_class(v: Verdict) -> &'static str {
    match v {
        Verdict::Ready => "s-up",
        Verdict::NotReady => "s-down",
        Verdict::InsufficientData => "s-unknown",
    }
}

pub(super) fn verdict_icon(v: Verdict) -> &'static str {
    match v {
        Verdict::Ready => "up",
        Verdict::NotReady => "down",
        Verdict::InsufficientData => "unknown",
    }
}

pub(super) fn severity_label(s: Severity, lang: Lang) -> &'static str {
    match s {
        Severity::Critical => lang.pick("Nghiêm trọng", "Critical"),
        Severity::Warning => lang.pick("Cảnh báo", "Warning"),
    }
}

/// An inline icon from the page's symbol sheet, with an accessible name.
pub(super) fn icon(name: &str) -> Markup {
    PreEscaped(format!(
        "<svg class=\"ic\" aria-hidden=\"true\" focusable=\"false\"><use href=\"#i-{name}\"/></svg>"
    ))
}

pub(super) fn status_badge(s: SiteStatus, lang: Lang) -> Markup {
    html! {
        span class={"badge " (status_class(s))} { (icon(s.as_str())) " " (status_label(s, lang)) }
    }
}

pub(super) fn verdict_badge(v: Verdict, lang: Lang) -> Markup {
    html! {
        span class={"badge " (verdict_class(v))} { (icon(verdict_icon(v))) " " (v.label(lang)) }
    }
}

/// What is wrong with a check now, in a few words: its failure reason, or the threshold its
/// last run is over.
pub(super) fn check_problem(c: &CheckStatus, lang: Lang) -> Option<String> {
    let last = c.last.as_ref()?;
    match c.health {
        Health::Down | Health::Failing => Some(
            last.reason
                .map(|r| reason_label(r, lang).to_string())
                .unwrap_or_else(|| health_label(c.health, lang).to_string()),
        ),
        Health::Degraded => Some(breached(c, lang)),
        _ => None,
    }
}

/// Which degraded threshold the last run is over, with both numbers: "mất gói 18 % > 10 %".
pub(super) fn breached(c: &CheckStatus, lang: Lang) -> String {
    let d = &c.check.degraded;
    let Some(last) = c.last.as_ref() else {
        return health_label(c.health, lang).to_string();
    };
    let ms = |s: f64| fmt_ms(s * 1000.0, lang);
    match &last.details {
        Details::Icmp(i) => {
            let rtt = i.rtt_avg.unwrap_or(0.0);
            let jit = i.jitter.unwrap_or(0.0);
            if !d.rtt.is_zero() && rtt > d.rtt.as_secs_f64() {
                format!("RTT {} > {}", ms(rtt), ms(d.rtt.as_secs_f64()))
            } else if !d.jitter.is_zero() && jit > d.jitter.as_secs_f64() {
                format!("jitter {} > {}", ms(jit), ms(d.jitter.as_secs_f64()))
            } else if i.loss_ratio > d.loss {
                format!(
                    "{} {} > {}",
                    lang.pick("mất gói", "loss"),
                    pct(i.loss_ratio, lang),
                    pct(d.loss, lang)
                )
            } else {
                // Loss is judged over many rounds: this one alone may be under the limit.
                format!(
                    "{} > {}",
                    lang.pick(
                        "mất gói kéo dài qua nhiều vòng",
                        "sustained loss over rounds"
                    ),
                    pct(d.loss, lang)
                )
            }
        }
        _ => format!(
            "{} {} > {}",
            lang.pick("chậm", "slow"),
            ms(last.duration_seconds),
            ms(d.latency.as_secs_f64())
        ),
    }
}

pub(super) fn check_title(c: &CheckDef, lang: Lang) -> String {
    match lang {
        Lang::Vi => c.title.clone(),
        Lang::En => c.title_en.clone().unwrap_or_else(|| english_title(c)),
    }
}

/// An English title for a check that has no `title_en`: what it checks, by role and kind, and
/// which check of its owner it is (the Vietnamese title would repeat the service's name).
pub(super) fn english_title(c: &CheckDef) -> String {
    let what = match (c.role, c.probe.kind()) {
        (CheckRole::Link, _) => "Network link",
        (CheckRole::Endpoint, _) => "Public service centre",
        (CheckRole::Video, _) => "Video conference point",
        (_, ProbeKind::Http) => "HTTP check",
        (_, ProbeKind::Tcp) => "TCP check",
        (_, ProbeKind::Icmp) => "Echo check",
        (_, ProbeKind::Dns) => "DNS check",
        (_, ProbeKind::Transaction) => "Transaction check",
    };
    format!("{what} ({})", c.id.name)
}

/// The worst check of a site that explains its status, as "Đường truyền mạng: mất gói".
pub(super) fn site_problem(checks: &[&CheckStatus], lang: Lang) -> Option<String> {
    let rank = |h: Health| match h {
        Health::Down => 0,
        Health::Failing => 1,
        Health::Degraded => 2,
        _ => 9,
    };
    let worst = checks
        .iter()
        .filter(|c| rank(c.health) < 9)
        .min_by_key(|c| (rank(c.health), c.check.role != CheckRole::Link))?;
    let what = check_problem(worst, lang)?;
    Some(format!("{}: {}", check_title(&worst.check, lang), what))
}

// ---------------------------------------------------------------------------------------------
// Page frame

pub(super) const CSS: &str = r#"
:root{--up:#17692c;--up-bg:#e5f4e8;--degraded:#7a4f00;--degraded-bg:#fff2cc;--down:#a8211a;--down-bg:#fde3e0;--maintenance:#1f4b91;--maintenance-bg:#e2ebfa;--unknown:#4d4d4d;--unknown-bg:#ececec;--fg:#1a1a1a;--muted:#555;--line:#cfcfcf;--panel:#fff}
*{box-sizing:border-box}
body{margin:0;font:14px/1.4 system-ui,"Segoe UI","DejaVu Sans",Arial,sans-serif;color:var(--fg);background:#f4f4f1}
a{color:#0b4f8a}
header.top{display:flex;flex-wrap:wrap;gap:.4rem 1.2rem;align-items:baseline;padding:.55rem 1rem;background:#123a5c;color:#fff}
header.top h1{font-size:1.2rem;margin:0;font-weight:650}
header.top a{color:#fff}
header.top .sp{flex:1}
#live-dot{display:inline-block;width:.6rem;height:.6rem;border-radius:50%;background:#7fd18b;margin-right:.3rem}
#live-dot.stale{background:#f0b429}
main{padding:.2rem 1rem 1rem}
.panel{background:var(--panel);border:1px solid var(--line);border-radius:6px;padding:.6rem .8rem;margin:.7rem 0}
.panel h2{font-size:1.05rem;margin:.1rem 0 .5rem}
.s-up{--c:var(--up);--b:var(--up-bg)}.s-degraded{--c:var(--degraded);--b:var(--degraded-bg)}.s-down{--c:var(--down);--b:var(--down-bg)}.s-maintenance{--c:var(--maintenance);--b:var(--maintenance-bg)}.s-unknown{--c:var(--unknown);--b:var(--unknown-bg)}
.ic{width:1em;height:1em;vertical-align:-.15em;fill:currentColor;flex:none}
.badge{display:inline-flex;gap:.25rem;align-items:center;padding:.05rem .45rem;border-radius:3px;background:var(--b);color:var(--c);border:1px solid var(--c);font-weight:600;white-space:nowrap}
.ready{display:flex;flex-wrap:wrap;gap:.5rem 1.5rem;align-items:center;border-left:8px solid var(--c)}
.ready .headline{font-size:2rem;font-weight:750;color:var(--c)}
.ready .facts{display:flex;flex-direction:column;gap:.15rem}
.ready ul{margin:.2rem 0 0;padding-left:1.1rem}
.counts{display:flex;flex-wrap:wrap;gap:.4rem;margin:.6rem 0}
.counts button{font:inherit;display:inline-flex;gap:.35rem;align-items:center;padding:.3rem .7rem;border-radius:4px;border:1px solid var(--c);background:var(--b);color:var(--c);font-weight:650;cursor:pointer}
.counts button[aria-pressed=true]{outline:3px solid #123a5c;outline-offset:1px}
.counts b{font-size:1.15rem}
.cols{display:grid;grid-template-columns:minmax(300px,440px) 1fr;gap:0 1rem}
@media (max-width:900px){.cols{grid-template-columns:1fr}}
.map svg{width:100%;height:auto;display:block}
body:has(main.wall){height:100vh;display:flex;flex-direction:column;overflow:hidden}
body:has(main.wall) footer{display:none}
main.wall{flex:1;min-height:0;max-width:none;padding:.4rem 1rem .8rem;box-sizing:border-box}
main.wall #live{height:100%;display:flex;flex-direction:column;gap:.6rem}
.wall-head{display:flex;align-items:center;gap:1.5rem 2.5rem;flex-wrap:wrap}
.wall-head .headline{font-size:2.4rem;font-weight:700}
.wall-head .counts{margin:0}.wall-head .counts .badge{font-size:1.25rem;padding:.25rem .6rem}
.wall-grid{flex:1;min-height:0;display:grid;grid-template-columns:minmax(0,1.15fr) minmax(0,1fr);gap:1rem}
.wall-grid .map{min-height:0;overflow:hidden;display:flex}.wall-grid .map svg{height:100%;width:100%}
.wall-side{min-height:0;display:flex;flex-direction:column;gap:1rem;overflow:hidden}
.wall-side .panel{overflow:hidden;margin:0}.wall-side #incidents{flex:1 1 auto;min-height:0}
.map .m{stroke:#fff;stroke-width:.6}
.map .m-up{fill:var(--up)}.map .m-degraded{fill:#b27400}.map .m-down{fill:var(--down)}.map .m-maintenance{fill:var(--maintenance)}.map .m-unknown{fill:#8a8a8a}
.map text{font-size:10px;fill:#333;paint-order:stroke;stroke:#fff;stroke-width:3px}
.map .legend{font-size:11px}
table{border-collapse:collapse;width:100%}
th,td{text-align:left;padding:.25rem .4rem;border-bottom:1px solid #e3e3e3;vertical-align:top}
th{font-weight:650;background:#f0f0ec}
td.n,th.n{text-align:right;font-variant-numeric:tabular-nums}
.muted{color:var(--muted)}
.small{font-size:.85rem}
.svc{display:flex;gap:.5rem;align-items:flex-start;padding:.3rem 0;border-bottom:1px solid #eee}
.svc:last-child{border-bottom:0}
.svc .name{font-weight:600}
.ward{display:flex;flex-wrap:wrap;gap:.25rem .4rem;align-items:center;padding:.3rem 0;border-bottom:1px solid #eee}
.ward:last-child{border-bottom:0}
.ward .nm{font-weight:600;margin-right:.3rem}
.chip{display:inline-flex;gap:.2rem;align-items:center;padding:0 .35rem;border-radius:3px;border:1px solid var(--c);background:var(--b);color:var(--c);font-size:.8rem;font-weight:600;white-space:nowrap}
.inc{padding:.3rem 0;border-bottom:1px solid #eee}
.inc:last-child{border-bottom:0}
.ack{display:inline-block;padding:0 .4rem;border:1px solid var(--up);border-radius:3px;color:var(--up);font-size:.85em}
.toolbar{display:flex;flex-wrap:wrap;gap:.5rem 1rem;align-items:center;margin:.4rem 0 .6rem}
.toolbar input[type=search]{font:inherit;padding:.35rem .5rem;min-width:16rem;border:1px solid #999;border-radius:4px}
.toolbar select{font:inherit;padding:.3rem}
.prov>h2{font-size:1.1rem;margin:.9rem 0 .2rem;border-bottom:2px solid #123a5c}
.dist>h3{font-size:.95rem;margin:.5rem 0 .25rem;color:#333}
.tiles{display:grid;grid-template-columns:repeat(auto-fill,minmax(200px,1fr));gap:.3rem}
.tile{display:flex;gap:.4rem;align-items:flex-start;padding:.3rem .45rem;border-radius:4px;border:1px solid var(--line);border-left:6px solid var(--c);background:var(--b);color:var(--fg);text-decoration:none}
.tile:hover,.tile:focus{outline:2px solid #123a5c}
.tile .ic{color:var(--c);width:1.15em;height:1.15em;margin-top:.1em}
.tile .t{display:flex;flex-direction:column;min-width:0}
.tile .nm{font-weight:600}
.tile .st{font-size:.82rem;color:var(--c);font-weight:650}
.tile .why{font-size:.8rem;color:#333;overflow:hidden;display:-webkit-box;-webkit-line-clamp:2;-webkit-box-orient:vertical}
.isl{display:inline-block;font-size:.72rem;font-weight:700;color:#0b4f8a;border:1px solid #0b4f8a;border-radius:3px;padding:0 .25rem;margin-left:.25rem;background:#fff}
.hide{display:none!important}
.chart svg{width:100%;max-width:720px;height:auto;background:#fff;border:1px solid #e0e0e0}
.chart text{font-size:10px;fill:#444}
dl.meta{display:grid;grid-template-columns:max-content 1fr;gap:.15rem .8rem;margin:.3rem 0}
dl.meta dt{color:var(--muted)}
dl.meta dd{margin:0}
footer{padding:1rem;color:var(--muted);font-size:.85rem}
"#;

/// Status icons, referenced with `<use href="#i-…">`.
pub(super) const SYMBOLS: &str = r##"<svg xmlns="http://www.w3.org/2000/svg" style="display:none">
<symbol id="i-up" viewBox="0 0 16 16"><circle cx="8" cy="8" r="7.5"/><path d="M4.2 8.3l2.4 2.4 5-5" fill="none" stroke="#fff" stroke-width="2"/></symbol>
<symbol id="i-degraded" viewBox="0 0 16 16"><path d="M8 .8L15.6 15H.4z"/><path d="M8 5.5v4.5M8 11.6v1.6" stroke="#fff" stroke-width="1.9"/></symbol>
<symbol id="i-down" viewBox="0 0 16 16"><path d="M4.7.5h6.6l4.2 4.2v6.6l-4.2 4.2H4.7L.5 11.3V4.7z"/><path d="M5.2 5.2l5.6 5.6M10.8 5.2l-5.6 5.6" stroke="#fff" stroke-width="2"/></symbol>
<symbol id="i-maintenance" viewBox="0 0 16 16"><rect x=".5" y=".5" width="15" height="15" rx="2.5"/><path d="M4 12l5-5M9.5 3.5a3 3 0 1 0 3 3" fill="none" stroke="#fff" stroke-width="1.8"/></symbol>
<symbol id="i-unknown" viewBox="0 0 16 16"><circle cx="8" cy="8" r="7.5"/><path d="M5.6 6a2.5 2.5 0 1 1 3.4 2.3c-.7.3-1 .8-1 1.5v.6M8 12v1.6" fill="none" stroke="#fff" stroke-width="1.8"/></symbol>
</svg>"##;

pub(super) const SCRIPT: &str = r#"
(function(){
  document.documentElement.classList.add('js');
  var q=document.getElementById('q'), prov=document.getElementById('prov'), isl=document.getElementById('isl');
  var filter=new URLSearchParams(location.search).get('status')||sessionStorage.getItem('lt-filter')||'';
  function fold(s){return s.normalize('NFD').replace(/[\u0300-\u036f]/g,'').replace(/[đĐ]/g,'d').toLowerCase();}
  function apply(){
    var live=document.getElementById('live'); if(!live) return;
    var words=q?fold(q.value).split(/\s+/).filter(Boolean):[];
    var p=prov?prov.value:'', only=isl&&isl.checked, shown=0;
    live.querySelectorAll('.tile').forEach(function(t){
      var text=t.getAttribute('data-fold'); if(text===null){text=fold(t.textContent+' '+t.getAttribute('data-slug')+' '+t.getAttribute('data-district'));t.setAttribute('data-fold',text);}
      var ok=words.every(function(w){return text.indexOf(w)>=0;})
        &&(!p||t.getAttribute('data-province')===p)
        &&(!only||t.getAttribute('data-island')==='1')
        &&(!filter||t.getAttribute('data-status')===filter);
      t.classList.toggle('hide',!ok); if(ok) shown++;
    });
    live.querySelectorAll('.dist,.prov').forEach(function(g){g.classList.toggle('hide',!g.querySelector('.tile:not(.hide)'));});
    live.querySelectorAll('.counts button').forEach(function(b){b.setAttribute('aria-pressed',b.getAttribute('data-filter')===filter?'true':'false');});
    var n=document.getElementById('shown'); if(n) n.textContent=shown;
  }
  document.addEventListener('click',function(e){
    var b=e.target.closest&&e.target.closest('.counts button'); if(!b) return;
    var f=b.getAttribute('data-filter'); filter=(filter===f)?'':f; sessionStorage.setItem('lt-filter',filter); apply();
  });
  [q,prov,isl].forEach(function(el){if(el){el.addEventListener('input',apply);el.addEventListener('change',apply);}});
  var busy=false, last=Date.now(), dot=document.getElementById('live-dot');
  function refresh(){
    if(busy) return; busy=true;
    fetch(location.href,{cache:'no-store'}).then(function(r){if(!r.ok) throw r.status; return r.text();}).then(function(t){
      var doc=new DOMParser().parseFromString(t,'text/html'), fresh=doc.getElementById('live'), old=document.getElementById('live');
      if(fresh&&old){old.replaceWith(fresh); apply(); fit();}
      var u=doc.getElementById('updated'), cur=document.getElementById('updated'); if(u&&cur) cur.textContent=u.textContent;
      last=Date.now(); if(dot) dot.classList.remove('stale');
    }).catch(function(){}).then(function(){busy=false;});
  }
  setInterval(function(){ refresh(); if(dot&&Date.now()-last>45000) dot.classList.add('stale'); }, 15000);
  if(window.EventSource){
    var timer=null, es=new EventSource('/api/v1/incidents/stream');
    ['opened','state_change','attached','sites_changed','acknowledged','resolved'].forEach(function(k){
      es.addEventListener(k,function(){ if(timer) clearTimeout(timer); timer=setTimeout(refresh,1500); });
    });
  }
  // Wall screen: record whether everything fits one screen (checked by a browser test).
  function fit(){
    if(!document.querySelector('main.wall')) return;
    var e=document.documentElement, ok=e.scrollHeight<=innerHeight+1&&e.scrollWidth<=innerWidth+1;
    ['readiness-headline','services','incidents'].forEach(function(id){var x=document.getElementById(id); if(x){var r=x.getBoundingClientRect(); ok=ok&&r.bottom<=innerHeight+1&&r.right<=innerWidth+1;}});
    // Nothing cut off inside a panel either (they clip rather than scroll).
    document.querySelectorAll('main.wall .wall-side .panel').forEach(function(p){var b=p.getBoundingClientRect().bottom; p.querySelectorAll('*').forEach(function(c){if(c.getBoundingClientRect().bottom>b+1) ok=false;});});
    var m=document.querySelector('main.wall .map svg'); if(m){var r=m.getBoundingClientRect(); ok=ok&&r.height>200&&r.bottom<=innerHeight+1;}
    e.setAttribute('data-fits',ok?'1':'0');
  }
  addEventListener('resize',fit); addEventListener('load',fit);
  apply(); fit();
})();
"#;

pub(super) fn page(lang: Lang, title: &str, updated: i64, alt_href: &str, body: Markup) -> Markup {
    let lang_code = match lang {
        Lang::Vi => "vi",
        Lang::En => "en",
    };
    html! {
        (DOCTYPE)
        html lang=(lang_code) {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) }
                style { (PreEscaped(CSS)) }
            }
            body {
                (PreEscaped(SYMBOLS))
                header.top {
                    h1 { a href={ "/" (lang_suffix(lang, true)) } style="text-decoration:none" { "Liên thông" } " · " (title) }
                    span.sp {}
                    span { span #live-dot {} (lang.pick("Cập nhật lúc ", "Updated ")) span #updated { (local_hms(updated)) } (lang.pick(" (giờ Việt Nam)", " (Viet Nam time)")) }
                    a href=(alt_href) lang=(lang.pick("en", "vi")) { (lang.pick("English", "Tiếng Việt")) }
                }
                (body)
                footer {
                    (lang.pick("Dữ liệu máy đọc: ", "Machine-readable: "))
                    a href="/api/v1/readiness" { "/api/v1/readiness" } " · "
                    a href="/api/v1/checks" { "/api/v1/checks" } " · "
                    a href="/api/v1/incidents" { "/api/v1/incidents" } " · "
                    a href="/incidents.atom" { "Atom" } " · "
                    a href="/metrics" { "/metrics" }
                }
            }
        }
    }
}

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

pub(super) fn tile(s: &SiteInfo, st: SiteStatus, checks: &[&CheckStatus], lang: Lang) -> Markup {
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

pub(super) fn readiness_summary(r: &Report, lang: Lang) -> Markup {
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
pub(super) fn window_words(r: &Report, lang: Lang) -> String {
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

pub(super) fn services_panel(
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
pub(super) fn ward_matrix<'a>(
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

fn service_name(svc: &crate::config::ServiceInfo, lang: Lang) -> &str {
    match lang {
        Lang::Vi => &svc.name,
        Lang::En => svc.name_en.as_deref().unwrap_or(&svc.name),
    }
}

/// `/`: the wards with an agent, each with one chip per shared service as seen from there and
/// how many fail (nothing when no agent is configured).
pub(super) fn ward_agents_panel(
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
pub(super) fn ward_view(d: &SiteData, lang: Lang) -> Markup {
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
pub(super) fn wall_body(
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
pub(super) fn severity_rank(s: SiteStatus) -> u8 {
    match s {
        SiteStatus::Unknown => 0,
        SiteStatus::Up => 1,
        SiteStatus::Maintenance => 2,
        SiteStatus::Degraded => 3,
        SiteStatus::Down => 4,
    }
}

/// How long an incident has lasted: "đã 12 phút", "đã 2 giờ 5 phút", "đã 3 ngày 4 giờ".
pub(super) fn lasted(from: i64, to: i64, lang: Lang) -> String {
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
pub(super) fn team_titles(i: &Incident, inv: &Inventory) -> Vec<String> {
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

pub(super) fn incidents_panel(
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

/// The schematic map: each site at its lat/lon (equirectangular), drawn by status with a shape
/// as well as a colour; an inset enlarges the dense inner city; Côn Đảo keeps its true
/// longitude, far to the south, across a marked break in the sea.
pub fn map_svg(inv: &Inventory, status: &HashMap<&str, SiteStatus>, lang: Lang) -> String {
    const W: f64 = 420.0;
    const LON0: f64 = 106.30;
    const LON1: f64 = 107.65;
    const LAT_TOP: f64 = 11.52;
    const LAT_MAIN_BOTTOM: f64 = 10.28;
    const LAT_SOUTH_TOP: f64 = 8.85;
    const LAT_SOUTH_BOTTOM: f64 = 8.55;
    const GAP: f64 = 46.0;
    let kx = W / (LON1 - LON0);
    let ky = kx / (10.9f64.to_radians().cos());
    let main_h = (LAT_TOP - LAT_MAIN_BOTTOM) * ky;
    let south_top = main_h + GAP;
    let h = south_top + (LAT_SOUTH_TOP - LAT_SOUTH_BOTTOM) * ky + 34.0;
    let proj = |lat: f64, lon: f64| -> (f64, f64) {
        let x = (lon - LON0) * kx;
        let y = if lat >= LAT_MAIN_BOTTOM - 0.05 {
            (LAT_TOP - lat) * ky
        } else {
            south_top + (LAT_SOUTH_TOP - lat) * ky
        };
        (x, y)
    };
    // Inner-city inset.
    let (ilat0, ilat1, ilon0, ilon1) = (10.70, 10.885, 106.585, 106.80);
    let (iw, ix, iy) = (200.0, W - 206.0, 6.0);
    let ik = iw / (ilon1 - ilon0);
    let iky = ik / (10.8f64.to_radians().cos());
    let ih = (ilat1 - ilat0) * iky;
    let in_inset =
        |lat: f64, lon: f64| (ilat0..=ilat1).contains(&lat) && (ilon0..=ilon1).contains(&lon);

    let mut o = String::with_capacity(40_000);
    let _ = write!(
        o,
        r##"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {W:.0} {h:.0}" role="img" aria-labelledby="map-t map-d"><title id="map-t">{}</title><desc id="map-d">{}</desc>"##,
        lang.pick("Bản đồ sơ đồ các xã, phường, đặc khu", "Schematic map of the sites"),
        lang.pick(
            "Mỗi điểm là một xã, phường, đặc khu tại vị trí kinh độ, vĩ độ; hình dạng và màu cho biết trạng thái. Khung nhỏ phóng to khu trung tâm. Côn Đảo ở xa về phía nam, khoảng biển ở giữa được rút ngắn.",
            "Each mark is a site at its latitude and longitude; shape and colour give its status. The inset enlarges the inner city. Côn Đảo lies far to the south; the sea between is shortened."
        )
    );
    o.push_str(r##"<defs><symbol id="m-up" viewBox="-5 -5 10 10" overflow="visible"><circle r="3.6"/></symbol><symbol id="m-degraded" viewBox="-5 -5 10 10" overflow="visible"><path d="M0-4.6L4.3 3.4H-4.3z"/></symbol><symbol id="m-down" viewBox="-5 -5 10 10" overflow="visible"><path d="M-2-4.5h4l2.5 2.5v4L2 4.5h-4L-4.5 2v-4z"/><path d="M-2-2l4 4M2-2l-4 4" stroke="#fff" stroke-width="1.3"/></symbol><symbol id="m-maintenance" viewBox="-5 -5 10 10" overflow="visible"><rect x="-3.6" y="-3.6" width="7.2" height="7.2"/></symbol><symbol id="m-unknown" viewBox="-5 -5 10 10" overflow="visible"><circle r="3.2" fill="#fff" stroke="#777" stroke-width="1.6"/></symbol></defs>"##);
    // Sea break.
    let by = main_h + GAP / 2.0;
    let _ = write!(
        o,
        r##"<rect x="0" y="0" width="{W:.0}" height="{h:.0}" fill="#f3f7fa"/><path d="M0 {y0:.1} l10 -5 l10 10 l10 -10 l10 10 l10 -5" transform="translate(0 0)" fill="none" stroke="#9bb" stroke-width="1"/><line x1="60" y1="{by:.1}" x2="{W:.0}" y2="{by:.1}" stroke="#9bb" stroke-dasharray="4 4"/><text x="64" y="{t:.1}">{}</text>"##,
        lang.pick(
            "≈ 180 km biển (rút ngắn) — Côn Đảo ở phía nam",
            "≈ 180 km of sea (shortened) — Côn Đảo to the south"
        ),
        y0 = by,
        t = by - 4.0,
    );
    // Province labels at the centroid of their sites.
    let mut cent: Vec<(&str, f64, f64, f64)> = Vec::new();
    for s in inv.sites.iter().filter(|s| s.lat >= LAT_MAIN_BOTTOM) {
        match cent.iter_mut().find(|c| c.0 == s.former_province) {
            Some(c) => {
                c.1 += s.lat;
                c.2 += s.lon;
                c.3 += 1.0;
            }
            None => cent.push((&s.former_province, s.lat, s.lon, 1.0)),
        }
    }
    let mark = |o: &mut String, x: f64, y: f64, s: &SiteInfo, scale: f64| {
        let st = status
            .get(s.slug.as_str())
            .copied()
            .unwrap_or(SiteStatus::Unknown);
        // Faults are drawn larger, so one stands out among a hundred healthy neighbours.
        let grow = match st {
            SiteStatus::Down | SiteStatus::Degraded => 1.5,
            _ => 1.0,
        };
        let r = 5.0 * scale * grow;
        let _ = write!(
            o,
            r##"<a href="/sites/{slug}{ls}"><title>{name} — {label}</title><use href="#m-{st}" class="m m-{st}" x="{x:.1}" y="{y:.1}" width="{w:.1}" height="{w:.1}"/></a>"##,
            slug = esc(&s.slug),
            ls = lang_suffix(lang, true),
            st = st.as_str(),
            x = x - r,
            y = y - r,
            w = 2.0 * r,
            name = esc(&s.name),
            label = status_label(st, lang),
        );
    };
    // Draw worse statuses last (on top).
    let mut order: Vec<&SiteInfo> = inv.sites.iter().collect();
    order.sort_by_key(|s| {
        severity_rank(
            status
                .get(s.slug.as_str())
                .copied()
                .unwrap_or(SiteStatus::Unknown),
        )
    });
    for s in &order {
        let (x, y) = proj(s.lat, s.lon);
        mark(
            &mut o,
            x,
            y,
            s,
            if in_inset(s.lat, s.lon) { 0.75 } else { 1.0 },
        );
    }
    // Province names where the map has room (the shipped three), else at their centroid.
    for (p, lat, lon, n) in &cent {
        let (lat, lon) = match *p {
            "binh-duong" => (11.49, 106.31),
            "tphcm" => (10.62, 106.31),
            "ba-ria-vung-tau" => (10.31, 107.12),
            _ => (lat / n, lon / n),
        };
        let (x, y) = proj(lat, lon);
        let (vi, en) = readiness::province_name(p);
        let _ = write!(
            o,
            r##"<text x="{:.1}" y="{:.1}" font-weight="600">{}</text>"##,
            x.clamp(2.0, W - 120.0),
            y,
            esc(lang.pick(&vi, &en))
        );
    }
    // Island names: to the left of the westernmost of two close islands.
    let islands: Vec<&SiteInfo> = inv.sites.iter().filter(|s| s.island).collect();
    for s in &islands {
        let (x, y) = proj(s.lat, s.lon);
        let crowded = islands
            .iter()
            .any(|o| o.slug != s.slug && (o.lat - s.lat).abs() < 0.1 && o.lon > s.lon);
        let (tx, anchor) = if crowded {
            (x - 6.0, "end")
        } else {
            (x + 6.0, "start")
        };
        let _ = write!(
            o,
            r##"<text x="{tx:.1}" y="{:.1}" text-anchor="{anchor}">{}</text>"##,
            y + 3.5,
            esc(&s.name)
        );
    }
    // Inset: the frame of the enlarged area on the map, then the enlargement.
    let (fx0, fy0) = proj(ilat1, ilon0);
    let (fx1, fy1) = proj(ilat0, ilon1);
    let _ = write!(
        o,
        r##"<rect x="{fx0:.1}" y="{fy0:.1}" width="{:.1}" height="{:.1}" fill="none" stroke="#123a5c" stroke-width=".8"/><line x1="{fx1:.1}" y1="{fy0:.1}" x2="{ix:.1}" y2="{:.1}" stroke="#123a5c" stroke-width=".6" stroke-dasharray="3 2"/><rect x="{ix:.1}" y="{iy:.1}" width="{iw:.1}" height="{ih:.1}" fill="#fff" stroke="#123a5c"/><text x="{:.1}" y="{:.1}">{}</text>"##,
        fx1 - fx0,
        fy1 - fy0,
        iy + ih,
        ix + 4.0,
        iy + ih + 12.0,
        lang.pick("Khu trung tâm (phóng to)", "Inner city (enlarged)"),
    );
    for s in order.iter().filter(|s| in_inset(s.lat, s.lon)) {
        let x = ix + (s.lon - ilon0) * ik;
        let y = iy + (ilat1 - s.lat) * iky;
        mark(&mut o, x, y, s, 1.0);
    }
    // Legend, under Côn Đảo, on two rows when one is not wide enough.
    let mut ly = h - 22.0;
    let mut lx = 4.0;
    for st in [
        SiteStatus::Up,
        SiteStatus::Degraded,
        SiteStatus::Down,
        SiteStatus::Maintenance,
        SiteStatus::Unknown,
    ] {
        let label = status_label(st, lang);
        let width = 24.0 + label.chars().count() as f64 * 6.3;
        if lx + width > W {
            lx = 4.0;
            ly += 15.0;
        }
        let _ = write!(
            o,
            r##"<use href="#m-{s}" class="m m-{s}" x="{x:.1}" y="{y:.1}" width="10" height="10"/><text class="legend" x="{tx:.1}" y="{ty:.1}">{label}</text>"##,
            s = st.as_str(),
            x = lx,
            y = ly - 5.0,
            tx = lx + 12.0,
            ty = ly + 4.0,
        );
        lx += width;
    }
    o.push_str("</svg>");
    o
}

/// Escapes text for HTML / SVG text and attribute values.
pub fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for ch in s.chars() {
        match ch {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c => o.push(c),
        }
    }
    o
}

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

pub(super) fn opt(v: Option<String>) -> String {
    v.unwrap_or_else(|| "–".into())
}

pub(super) fn limit_ms(c: &CheckDef) -> Option<f64> {
    let l = if c.probe.kind() == ProbeKind::Icmp {
        c.degraded.rtt
    } else {
        c.degraded.latency
    };
    (!l.is_zero()).then_some(l.as_secs_f64() * 1000.0)
}

pub(super) fn incident_line(i: &Incident, lang: Lang) -> Markup {
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

pub(super) fn check_row(c: &CheckStatus, lang: Lang) -> Markup {
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

pub(super) fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(n).collect();
        t.push('…');
        t
    }
}

/// Packet loss of echo rounds per minute (lost / sent) over `[from_m, to_m)`, with the class's
/// degraded loss threshold dashed: on island links loss, not RTT, is what degrades first.
pub fn loss_chart_svg(
    pts: &[SeriesPoint],
    from_m: i64,
    to_m: i64,
    threshold: f64,
    lang: Lang,
) -> String {
    const W: f64 = 720.0;
    const H: f64 = 90.0;
    const L: f64 = 44.0;
    const T: f64 = 8.0;
    const PH: f64 = 60.0;
    let pw = W - L - 8.0;
    let span = (to_m - from_m).max(1) as f64;
    let x = |m: i64| L + (m - from_m) as f64 / span * pw;
    let loss = |p: &SeriesPoint| {
        (p.stats.sent > 0)
            .then(|| f64::from(p.stats.lost.min(p.stats.sent)) / f64::from(p.stats.sent))
    };
    let top = (pts.iter().filter_map(loss).fold(0.0, f64::max) * 1.25)
        .max(threshold * 1.5)
        .clamp(0.01, 1.0);
    let y = |v: f64| T + PH - (v / top).min(1.0) * PH;
    let mut o = String::with_capacity(2048);
    let _ = write!(
        o,
        r##"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {W:.0} {H:.0}" role="img"><title>{}</title><line x1="{L}" y1="{b:.1}" x2="{r:.1}" y2="{b:.1}" stroke="#888"/><line x1="{L}" y1="{T}" x2="{L}" y2="{b:.1}" stroke="#888"/><text x="{tx:.1}" y="{ty:.1}" text-anchor="end">{}</text><text x="{tx:.1}" y="{b:.1}" text-anchor="end">0</text>"##,
        lang.pick("Biểu đồ mất gói", "Packet loss chart"),
        esc(&pct(top, lang)),
        b = T + PH,
        r = L + pw,
        tx = L - 3.0,
        ty = T + 8.0,
    );
    if threshold > 0.0 {
        let _ = write!(
            o,
            r##"<line class="loss-limit" x1="{L}" y1="{yy:.1}" x2="{r:.1}" y2="{yy:.1}" stroke="#a8211a" stroke-dasharray="5 4"/><text x="{r:.1}" y="{ty:.1}" fill="#a8211a" text-anchor="end">{}</text>"##,
            esc(&pct(threshold, lang)),
            yy = y(threshold),
            r = L + pw,
            ty = y(threshold) - 3.0,
        );
    }
    let bw = (pw / span).max(1.0);
    for p in pts {
        if let Some(v) = loss(p) {
            let _ = write!(
                o,
                r##"<rect class="loss" data-minute="{}" x="{:.1}" y="{:.1}" width="{bw:.1}" height="{:.1}" fill="{}"/>"##,
                p.minute,
                x(p.minute),
                y(v),
                T + PH - y(v),
                if v > threshold { "#a8211a" } else { "#5b7fa6" }
            );
        }
    }
    if !pts.iter().any(|p| loss(p).is_some()) {
        let _ = write!(
            o,
            r##"<text x="{:.1}" y="{:.1}" text-anchor="middle" fill="#555">{}</text>"##,
            L + pw / 2.0,
            T + PH / 2.0,
            lang.pick("Chưa có dữ liệu", "No data yet")
        );
    }
    o.push_str("</svg>");
    o
}

/// A small latency chart of minute averages over `[from_m, to_m)`, failures, maintenance and
/// "monitor blind" minutes marked under the axis, the class limit dashed.
pub fn chart_svg(
    pts: &[SeriesPoint],
    from_m: i64,
    to_m: i64,
    limit: Option<f64>,
    lang: Lang,
) -> String {
    const W: f64 = 720.0;
    const H: f64 = 130.0;
    const L: f64 = 44.0;
    const T: f64 = 8.0;
    const PH: f64 = 92.0; // plot height
    let pw = W - L - 8.0;
    let span = (to_m - from_m).max(1) as f64;
    let x = |m: i64| L + (m - from_m) as f64 / span * pw;
    let avg = |p: &SeriesPoint| (p.stats.lat_n > 0).then(|| p.stats.lat_sum / p.stats.lat_n as f64);
    // Scaled to the values (the limit is drawn when in range, else named in the corner).
    let top = pts.iter().filter_map(avg).fold(0.0, f64::max) * 1.25;
    let top = if limit.is_some_and(|l| l <= top * 1.6) {
        top.max(limit.unwrap_or(0.0) * 1.1)
    } else {
        top
    }
    .max(1.0);
    let y = |v: f64| T + PH - (v / top).min(1.0) * PH;
    let mut o = String::with_capacity(4096);
    let _ = write!(
        o,
        r##"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {W:.0} {H:.0}" role="img"><title>{}</title>"##,
        lang.pick("Biểu đồ độ trễ", "Latency chart")
    );
    let _ = write!(
        o,
        r##"<line x1="{L}" y1="{b:.1}" x2="{r:.1}" y2="{b:.1}" stroke="#888"/><line x1="{L}" y1="{T}" x2="{L}" y2="{b:.1}" stroke="#888"/><text x="{tx:.1}" y="{ty:.1}" text-anchor="end">{}</text><text x="{tx:.1}" y="{b:.1}" text-anchor="end">0</text>"##,
        esc(&fmt_ms(top, lang)),
        b = T + PH,
        r = L + pw,
        tx = L - 3.0,
        ty = T + 8.0,
    );
    match limit {
        Some(l) if l <= top => {
            let _ = write!(
                o,
                r##"<line x1="{L}" y1="{yy:.1}" x2="{r:.1}" y2="{yy:.1}" stroke="#a8211a" stroke-dasharray="5 4"/><text x="{tx:.1}" y="{ty:.1}" fill="#a8211a" text-anchor="end">{}</text>"##,
                esc(&fmt_ms(l, lang)),
                yy = y(l),
                r = L + pw,
                tx = L + pw,
                ty = y(l) - 3.0,
            );
        }
        Some(l) => {
            let _ = write!(
                o,
                r##"<text x="{tx:.1}" y="{ty:.1}" fill="#a8211a" text-anchor="end">{} {} ↑</text>"##,
                lang.pick("ngưỡng", "limit"),
                esc(&fmt_ms(l, lang)),
                tx = L + pw,
                ty = T + 8.0,
            );
        }
        None => {}
    }
    // Time labels.
    for m in [from_m, from_m + (to_m - from_m) / 2, to_m] {
        let hm = local_hms(m * 60_000);
        let _ = write!(
            o,
            r##"<text x="{:.1}" y="{:.1}" text-anchor="middle">{}</text>"##,
            x(m).clamp(L + 12.0, W - 20.0),
            H - 4.0,
            &hm[..5]
        );
    }
    // Failure and maintenance marks.
    let bw = (pw / span).max(1.0);
    for p in pts {
        let s = &p.stats;
        let fill = if s.attempts > 0 && s.successes < s.attempts {
            "#a8211a"
        } else if s.attempts == 0 && s.maint > 0 {
            "#8a8a8a"
        } else if s.attempts == 0 && s.blind > 0 {
            // The prober itself was cut off: nothing was seen of the site ("monitor blind").
            "#6a4c9c"
        } else {
            continue;
        };
        let _ = write!(
            o,
            r##"<rect x="{:.1}" y="{:.1}" width="{bw:.1}" height="7" fill="{fill}"/>"##,
            x(p.minute),
            T + PH + 2.0
        );
    }
    // The line, broken over gaps.
    let mut path = String::new();
    let mut prev: Option<i64> = None;
    for p in pts {
        let Some(v) = avg(p) else {
            prev = None;
            continue;
        };
        let cmd = if prev.is_some_and(|m| p.minute - m <= 2) {
            'L'
        } else {
            'M'
        };
        let _ = write!(path, "{cmd}{:.1} {:.1}", x(p.minute) + bw / 2.0, y(v));
        prev = Some(p.minute);
    }
    if path.is_empty() {
        let _ = write!(
            o,
            r##"<text x="{:.1}" y="{:.1}" text-anchor="middle">{}</text>"##,
            L + pw / 2.0,
            T + PH / 2.0,
            lang.pick("Chưa có dữ liệu", "No data yet")
        );
    } else {
        let _ = write!(
            o,
            r##"<path d="{path}" fill="none" stroke="#123a5c" stroke-width="1.5"/>"##
        );
    }
    o.push_str("</svg>");
    o
}

/// The readiness report as a standalone HTML document (also `lienthong readiness --format html`).
fn team_stat(st: &crate::incidents::figures::Stat, lang: Lang) -> String {
    match (st.median_seconds, st.p90_seconds, st.max_seconds) {
        (Some(a), Some(b), Some(c)) => format!(
            "{} / {} / {}",
            readiness::duration_text(a, lang),
            readiness::duration_text(b, lang),
            readiness::duration_text(c, lang)
        ),
        _ => "–".into(),
    }
}

pub fn report_html(r: &Report, lang: Lang) -> Markup {
    let c = &r.city;
    let generated = crate::localtime::parse_rfc3339(&r.generated_at).unwrap_or(0);
    let alt = format!(
        "/readiness?from={}&to={}{}",
        r.from,
        r.to,
        lang.pick("&lang=en", "")
    );
    let cls = if c.all_ready {
        "s-up"
    } else if c.not_ready > 0 {
        "s-down"
    } else {
        "s-unknown"
    };
    let body = html! {
        main {
            section class={"panel ready " (cls)} #readiness data-total=(c.total) data-ready=(c.ready) {
                div {
                    div.headline { (lang.pick(&c.headline, &c.headline_en)) }
                    div.small.muted { (r.from_local) " → " (r.to_local) " " (lang.pick("(giờ Việt Nam)", "(Viet Nam time)")) }
                }
                div.facts {
                    span { (verdict_badge(Verdict::NotReady, lang)) " " b { (c.not_ready) } }
                    span { (verdict_badge(Verdict::InsufficientData, lang)) " " b { (c.insufficient_data) } }
                    span { (lang.pick("Dịch vụ dùng chung đạt: ", "Shared services ready: ")) b { (c.services_ready) "/" (c.services_total) } }
                    span { (lang.pick("Lập lúc ", "Generated ")) (r.generated_at_local) }
                }
            }
            @for p in &r.prober_incidents {
                div.panel.s-degraded { (icon("degraded")) " " b { (lang.pick("Hệ thống giám sát bị gián đoạn", "Monitoring impaired")) } " #" (p.id) ": " (lang.pick(&p.title, &p.title_en)) }
            }
            section.panel {
                h2 { (lang.pick("Tiêu chí", "Criteria")) }
                ul { @for l in readiness::criteria_lines(r, lang) { li { (l) } } }
                @if r.start_rounded { p.small.muted { (lang.pick("Đầu khoảng thời gian cũ hơn dữ liệu theo phút còn lưu: giờ đầu tiên được tính trọn giờ.", "The window starts before the per-minute data kept: its first hour is counted whole.")) } }
            }
            @for (v, vi, en) in [(Verdict::NotReady, "Chưa sẵn sàng", "Not ready"), (Verdict::InsufficientData, "Không đủ dữ liệu", "Insufficient data")] {
                @let list: Vec<&readiness::SiteResult> = r.sites.iter().filter(|s| s.verdict == v).collect();
                section.panel {
                    h2 { (lang.pick(vi, en)) " (" (list.len()) ")" }
                    @if list.is_empty() { p.muted { (lang.pick("Không có.", "None.")) } } @else {
                        table {
                            thead { tr { th { (lang.pick("Mã", "Code")) } th { (lang.pick("Xã, phường, đặc khu", "Site")) } th { (lang.pick("Quận, huyện cũ", "Former district")) } th { (lang.pick("Lý do", "Reasons")) } } }
                            tbody { @for s in list { tr {
                                td { (s.code) }
                                td { a href={ "/sites/" (s.slug) (lang_suffix(lang, true)) } { (s.name) } @if s.island { span.isl { (lang.pick("Đảo", "Island")) } } }
                                td { (s.former_district) }
                                td { @for f in &s.reasons { div { (f.text(lang)) } } }
                            } } }
                        }
                    }
                }
            }
            section.panel {
                h2 { (lang.pick("Dịch vụ dùng chung", "Shared services")) }
                table {
                    thead { tr { th { (lang.pick("Dịch vụ", "Service")) } th { (lang.pick("Kết quả", "Verdict")) } th.n { (lang.pick("Khả dụng thấp nhất", "Lowest availability")) } th { (lang.pick("Lý do", "Reasons")) } } }
                    tbody { @for s in &r.services { tr {
                        td { (match lang { Lang::Vi => s.name.as_str(), Lang::En => s.name_en.as_deref().unwrap_or(&s.name) }) }
                        td { (verdict_badge(s.verdict, lang)) }
                        td.n { (opt(readiness::worst_availability(&s.checks).map(|a| pct(a, lang)))) }
                        td { @for f in &s.reasons { div { (f.text(lang)) } } }
                    } } }
                }
            }
            @for (title, groups) in [(lang.pick("Theo tỉnh, thành phố cũ", "By former province"), &r.provinces), (lang.pick("Theo tổ chuyên trách", "By team"), &r.teams)] {
                @if !groups.is_empty() {
                    section.panel {
                        h2 { (title) }
                        table {
                            @let with_services = groups.iter().any(|g| g.services_total > 0);
                            thead { tr {
                                th { (lang.pick("Nhóm", "Group")) } th.n { (lang.pick("Xã, phường", "Sites")) }
                                th.n { (Verdict::Ready.title(lang)) } th.n { (Verdict::NotReady.title(lang)) } th.n { (Verdict::InsufficientData.title(lang)) }
                                @if with_services { th.n { (lang.pick("Dịch vụ dùng chung sẵn sàng", "Shared services ready")) } }
                            } }
                            tbody { @for g in groups.iter() { tr {
                                td { (lang.pick(&g.name, &g.name_en)) } td.n { (g.total) } td.n { (g.ready) } td.n { (g.not_ready) } td.n { (g.insufficient_data) }
                                @if with_services { td.n { @if g.services_total > 0 { (g.services_ready) "/" (g.services_total) } @else { "–" } } }
                            } } }
                        }
                    }
                }
            }
            @if let Some(f) = &r.team_figures {
                section.panel #team-figures {
                    h2 { (lang.pick("Tổ chuyên trách: thời gian tiếp nhận và khắc phục sự cố", "Teams: time to acknowledge and to resolve")) }
                    p { (lang.pick("Trung vị / p90 / lâu nhất, tính từ lúc sự cố bắt đầu; sự cố bắt đầu trong khoảng thời gian báo cáo.", "Median / p90 / max from the incident's start; incidents started in the window.")) }
                    table {
                        thead { tr {
                            th { (lang.pick("Tổ", "Team")) } th { (lang.pick("Mức độ", "Severity")) } th.n { (lang.pick("Sự cố", "Incidents")) }
                            th { (lang.pick("Thời gian tiếp nhận", "Time to acknowledge")) } th { (lang.pick("Thời gian khắc phục", "Time to resolve")) }
                            th.n { (lang.pick("Đang mở", "Open")) } th.n { (lang.pick("Mở lâu nhất", "Oldest open")) }
                        } }
                        tbody { @for tf in f.teams.iter().chain(std::iter::once(&f.city)) {
                            @for (i, sf) in tf.severities.iter().enumerate() {
                                @if i == 0 || sf.incidents > 0 {
                                    tr data-team=(tf.team) data-severity=(sf.severity) {
                                        td { @if i == 0 { (readiness::team_label(tf, lang)) } }
                                        td { (match sf.severity.as_str() { "critical" => lang.pick("Nghiêm trọng", "Critical"), "warning" => lang.pick("Cảnh báo", "Warning"), _ => lang.pick("Tất cả", "All") }) }
                                        td.n { (sf.incidents) }
                                        td { (team_stat(&sf.time_to_acknowledge, lang)) }
                                        td { (team_stat(&sf.time_to_resolve, lang)) }
                                        td.n { @if i == 0 { (tf.open.count) } }
                                        td.n { @if i == 0 { (opt(tf.open.oldest_seconds.map(|s| readiness::duration_text(s, lang)))) } }
                                    }
                                }
                            }
                        } }
                    }
                }
            }
            section.panel {
                h2 { (lang.pick("Chi tiết từng xã, phường, đặc khu", "Every site")) " (" (r.sites.len()) ")" }
                table {
                    thead { tr { th { (lang.pick("Mã", "Code")) } th { (lang.pick("Tên", "Name")) } th { (lang.pick("Kết quả", "Verdict")) } th.n { (lang.pick("Khả dụng thấp nhất", "Lowest availability")) } th.n { (lang.pick("RTT đường truyền", "Link RTT")) } th.n { (lang.pick("Mất gói", "Loss")) } th { (lang.pick("Phần mềm dùng chung từ phường", "Shared services from the ward")) } } }
                    tbody { @for s in &r.sites {
                        @let link = s.checks.iter().find(|c| c.role == "link");
                        tr data-slug=(s.slug) data-verdict=(s.verdict.as_str()) {
                            td { (s.code) } td { (s.name) } td { (verdict_badge(s.verdict, lang)) }
                            td.n { (opt(readiness::worst_availability(&s.checks).map(|a| pct(a, lang)))) }
                            td.n { (opt(link.and_then(|c| c.latency_quantile_ms).map(|v| fmt_ms(v, lang)))) }
                            td.n { (opt(link.and_then(|c| c.loss).map(|v| pct(v, lang)))) }
                            td.ward-services data-verdict=[s.ward_services.verdict.map(|v| v.as_str())] { (s.ward_services.text(lang)) }
                        }
                    } }
                }
            }
        }
    };
    page(
        lang,
        lang.pick("Báo cáo sẵn sàng", "Readiness report"),
        generated,
        &alt,
        body,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Minutes seen only while the prober was cut off are marked as such, apart from failures.
    #[test]
    fn chart_marks_monitor_blind_minutes() {
        use crate::availability::MinuteStats;
        let pt = |minute, stats| SeriesPoint { minute, stats };
        let pts = [
            pt(
                0,
                MinuteStats {
                    attempts: 6,
                    successes: 6,
                    lat_n: 6,
                    lat_sum: 60.0,
                    ..Default::default()
                },
            ),
            pt(
                1,
                MinuteStats {
                    blind: 6,
                    ..Default::default()
                },
            ),
            pt(
                2,
                MinuteStats {
                    attempts: 6,
                    successes: 3,
                    ..Default::default()
                },
            ),
        ];
        let svg = chart_svg(&pts, 0, 3, None, Lang::Vi);
        assert_eq!(svg.matches("#6a4c9c").count(), 1, "one blind minute");
        assert_eq!(
            svg.matches("fill=\"#a8211a\"").count(),
            1,
            "one failed minute"
        );
    }

    /// Every probe failure reason has its own Vietnamese words (none falls through to the raw
    /// code, which is what an unknown reason shows).
    #[test]
    fn every_reason_has_a_label() {
        for r in crate::probe::Reason::ALL {
            assert_ne!(reason_label(r.as_str(), Lang::Vi), r.as_str(), "{r:?}");
        }
    }
}
