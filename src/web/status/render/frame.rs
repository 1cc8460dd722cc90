//! The page frame: style sheet, icon symbols, the live-update script and the document around
//! every page.

use super::*;

pub(in crate::web::status) const CSS: &str = r#"
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
pub(in crate::web::status) const SYMBOLS: &str = r##"<svg xmlns="http://www.w3.org/2000/svg" style="display:none">
<symbol id="i-up" viewBox="0 0 16 16"><circle cx="8" cy="8" r="7.5"/><path d="M4.2 8.3l2.4 2.4 5-5" fill="none" stroke="#fff" stroke-width="2"/></symbol>
<symbol id="i-degraded" viewBox="0 0 16 16"><path d="M8 .8L15.6 15H.4z"/><path d="M8 5.5v4.5M8 11.6v1.6" stroke="#fff" stroke-width="1.9"/></symbol>
<symbol id="i-down" viewBox="0 0 16 16"><path d="M4.7.5h6.6l4.2 4.2v6.6l-4.2 4.2H4.7L.5 11.3V4.7z"/><path d="M5.2 5.2l5.6 5.6M10.8 5.2l-5.6 5.6" stroke="#fff" stroke-width="2"/></symbol>
<symbol id="i-maintenance" viewBox="0 0 16 16"><rect x=".5" y=".5" width="15" height="15" rx="2.5"/><path d="M4 12l5-5M9.5 3.5a3 3 0 1 0 3 3" fill="none" stroke="#fff" stroke-width="1.8"/></symbol>
<symbol id="i-unknown" viewBox="0 0 16 16"><circle cx="8" cy="8" r="7.5"/><path d="M5.6 6a2.5 2.5 0 1 1 3.4 2.3c-.7.3-1 .8-1 1.5v.6M8 12v1.6" fill="none" stroke="#fff" stroke-width="1.8"/></symbol>
</svg>"##;

pub(in crate::web::status) const SCRIPT: &str = r#"
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

pub(in crate::web::status) fn page(
    lang: Lang,
    title: &str,
    updated: i64,
    alt_href: &str,
    body: Markup,
) -> Markup {
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
