//! The status page's "Kiểm tra trước hội nghị" panel: a button that runs the pre-conference
//! sweep (`POST /api/v1/sweep`, see `web::sweep`) and fills a table live from its event stream.
//!
//! The write token is never in the page: the operator types it into a password field, and it is
//! kept in `sessionStorage` (this tab only) for the next sweep; a 401/403 forgets it. The sweep
//! follows the page's former-province filter.

use maud::{html, Markup, PreEscaped};

use crate::readiness::Lang;

const STYLE: &str = r#"
#sweep form{display:flex;flex-wrap:wrap;gap:.5rem;align-items:center}
#sweep table{width:100%;border-collapse:collapse;margin-top:.5rem;font-size:.9rem}
#sweep th,#sweep td{text-align:left;padding:.2rem .4rem;border-bottom:1px solid #ddd}
#sweep tr.sw-not-ready td:nth-child(2){color:#b00020;font-weight:bold}
#sweep tr.sw-ready td:nth-child(2){color:#1b6e20}
#sweep tr.pending td:nth-child(2){color:#666}
"#;

const SCRIPT: &str = r#"
(function(){
  var f=document.getElementById('sweep-form'); if(!f||!window.fetch) return;
  var tok=document.getElementById('sweep-token'), st=document.getElementById('sweep-status'),
      rows=document.getElementById('sweep-rows'), tbl=document.getElementById('sweep-table'),
      btn=document.getElementById('sweep-run'), L=JSON.parse(f.getAttribute('data-words')),
      en=f.getAttribute('data-lang')==='en';
  var saved=sessionStorage.getItem('lt-token'); if(saved) tok.value=saved;
  function cell(tr,text){var td=document.createElement('td'); td.textContent=text; tr.appendChild(td); return td;}
  f.addEventListener('submit',function(e){
    e.preventDefault();
    var t=tok.value.trim(); if(!t){st.textContent=L.need; tok.focus(); return;}
    sessionStorage.setItem('lt-token',t);
    var body={}, prov=document.getElementById('prov'); if(prov&&prov.value) body.former_province=prov.value;
    btn.disabled=true; rows.textContent=''; tbl.hidden=false; st.removeAttribute('data-done');
    st.textContent=L.starting;
    var done=0,total=0,ready=0,bySlug={};
    function progress(){st.textContent=done+'/'+total+' '+L.checked+' · '+ready+' '+L.ready+' · '+(done-ready)+' '+L.notReady;}
    function handle(ev,d){
      if(ev==='start'){
        total=d.total;
        d.sites.forEach(function(s){var tr=document.createElement('tr'); tr.className='pending'; tr.setAttribute('data-slug',s.site);
          cell(tr,s.name); cell(tr,'… '+L.waiting); cell(tr,''); cell(tr,''); rows.appendChild(tr); bySlug[s.site]=tr;});
        progress();
      } else if(ev==='site'){
        var tr=bySlug[d.site]; if(!tr) return;
        done++; if(d.ready) ready++;
        tr.className=d.ready?'sw-ready':'sw-not-ready'; tr.setAttribute('data-ready',d.ready?'1':'0');
        tr.children[1].textContent=d.ready?('✔ '+L.ready):('✖ '+L.notReady);
        tr.children[2].textContent=(en?d.reason_en:d.reason)||'';
        var li=d.last_incident; tr.children[3].textContent=li?('#'+li.id+' '+(en?li.title_en:li.title)+' ('+li.state+')'):'—';
        if(!d.ready) rows.insertBefore(tr,rows.firstChild);
        progress();
      } else if(ev==='done'){
        progress(); st.textContent+=' · '+L.done+' ('+d.duration_seconds.toFixed(1)+' s)'; st.setAttribute('data-done','1');
      }
    }
    fetch('/api/v1/sweep',{method:'POST',cache:'no-store',
      headers:{'Authorization':'Bearer '+t,'Accept':'text/event-stream','Content-Type':'application/json'},
      body:JSON.stringify(body)}).then(function(r){
      if(!r.ok){
        if(r.status===401||r.status===403) sessionStorage.removeItem('lt-token');
        return r.json().then(function(j){throw r.status+': '+((j&&j.error)||'');},function(){throw r.status;});
      }
      var rd=r.body.getReader(), dec=new TextDecoder(), buf='';
      function pump(){return rd.read().then(function(x){
        if(x.done) return;
        buf+=dec.decode(x.value,{stream:true});
        var i; while((i=buf.indexOf('\n\n'))>=0){
          var chunk=buf.slice(0,i), ev='message', data=''; buf=buf.slice(i+2);
          chunk.split('\n').forEach(function(l){ if(l.indexOf('event:')===0) ev=l.slice(6).trim(); else if(l.indexOf('data:')===0) data+=l.slice(5).replace(/^ /,''); });
          if(data) handle(ev,JSON.parse(data));
        }
        return pump();
      });}
      return pump();
    }).catch(function(e){st.textContent=L.failed+' '+e; st.setAttribute('data-done','error');})
      .then(function(){btn.disabled=false;});
  });
})();
"#;

/// The panel (not on the wall screen).
pub(super) fn panel(lang: Lang) -> Markup {
    let words = serde_json::json!({
        "need": lang.pick("Nhập mã API (quyền ghi) để kiểm tra.", "Enter the API (write) token to run the sweep."),
        "starting": lang.pick("Đang bắt đầu kiểm tra…", "Starting the sweep…"),
        "waiting": lang.pick("đang kiểm tra", "checking"),
        "checked": lang.pick("đã kiểm tra", "checked"),
        "ready": lang.pick("sẵn sàng", "ready"),
        "notReady": lang.pick("chưa sẵn sàng", "not ready"),
        "done": lang.pick("xong", "done"),
        "failed": lang.pick("Không kiểm tra được:", "Sweep failed:"),
    });
    html! {
        section.panel #sweep aria-labelledby="sweep-h" {
            style { (PreEscaped(STYLE)) }
            h2 #sweep-h { (lang.pick("Kiểm tra trước hội nghị", "Pre-conference check")) }
            p.muted.small {
                (lang.pick(
                    "Kiểm tra ngay điểm cầu truyền hình và đường truyền của các đơn vị (theo bộ lọc khu vực ở trên). Cần mã API có quyền ghi; mã chỉ được giữ trong thẻ trình duyệt này.",
                    "Probes every site's conference point and link now (following the former-province filter above). Needs the API write token; it is kept in this browser tab only.",
                ))
            }
            form #sweep-form data-words=(words.to_string()) data-lang=(lang.pick("vi", "en")) {
                label { (lang.pick("Mã API: ", "API token: ")) input #sweep-token type="password" autocomplete="off" size="24"; }
                button #sweep-run type="submit" { (lang.pick("Kiểm tra trước hội nghị", "Pre-conference check")) }
            }
            p #sweep-status role="status" aria-live="polite" {}
            table #sweep-table hidden {
                thead { tr {
                    th { (lang.pick("Đơn vị", "Site")) }
                    th { (lang.pick("Sẵn sàng", "Ready")) }
                    th { (lang.pick("Lý do", "Reason")) }
                    th { (lang.pick("Sự cố gần nhất", "Last incident")) }
                } }
                tbody #sweep-rows {}
            }
            script { (PreEscaped(SCRIPT)) }
        }
    }
}
