//! The simulator's DNS responder (UDP): A queries for a configured name get [`ANSWER`], other
//! types of a configured name get an empty NOERROR, every other name NXDOMAIN.

use std::net::Ipv4Addr;

use hickory_proto::op::{Message, MessageType, OpCode, ResponseCode};
use hickory_proto::rr::rdata::A;
use hickory_proto::rr::{Name, RData, Record, RecordType};
use tokio::net::UdpSocket;
use tokio_util::sync::CancellationToken;

use super::scenario::FaultKind;
use super::FaultView;
use crate::config::CheckId;

/// The address every configured name resolves to (the administrative-procedures portal).
pub const ANSWER: Ipv4Addr = Ipv4Addr::new(127, 20, 0, 1);
const TTL: u32 = 60;

/// One responder: the socket and the names it knows (lower-case, fully qualified).
pub(crate) struct DnsSite {
    pub socket: UdpSocket,
    pub names: Vec<Name>,
    pub owners: Vec<CheckId>,
}

/// Answers queries until cancelled; silent while a `link_down` fault hits an owner.
pub(crate) async fn run_dns(site: DnsSite, view: FaultView, cancel: CancellationToken) {
    let mut buf = vec![0u8; 4096];
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            r = site.socket.recv_from(&mut buf) => {
                let Ok((n, peer)) = r else { continue };
                if !super::is_loopback_v4(peer.ip()) {
                    continue;
                }
                let down = view.current().iter().any(|f| {
                    f.kind == FaultKind::LinkDown && site.owners.iter().any(|id| f.targets(id, true))
                });
                if down {
                    continue;
                }
                if let Some(reply) = answer(&buf[..n], &site.names) {
                    if let Err(e) = site.socket.send_to(&reply, peer).await {
                        tracing::debug!("simulator: DNS reply to {peer}: {e}");
                    }
                }
            }
        }
    }
}

/// The encoded response to `query`, or `None` for garbage (dropped, like a real server would
/// drop what it cannot parse as a query).
pub(crate) fn answer(query: &[u8], names: &[Name]) -> Option<Vec<u8>> {
    let req = Message::from_vec(query).ok()?;
    if req.message_type() != MessageType::Query {
        return None;
    }
    let mut resp = Message::new();
    resp.set_id(req.id())
        .set_message_type(MessageType::Response)
        .set_op_code(req.op_code())
        .set_authoritative(true)
        .set_recursion_desired(req.recursion_desired())
        .set_recursion_available(true);
    if req.op_code() != OpCode::Query || req.queries().len() != 1 {
        resp.set_response_code(ResponseCode::FormErr);
        return resp.to_vec().ok();
    }
    let q = req.queries()[0].clone();
    let name = q.name().to_lowercase();
    let known = names.iter().any(|n| n.to_lowercase() == name);
    resp.add_query(q.clone());
    if !known {
        resp.set_response_code(ResponseCode::NXDomain);
    } else {
        resp.set_response_code(ResponseCode::NoError);
        if q.query_type() == RecordType::A {
            resp.add_answer(Record::from_rdata(
                q.name().clone(),
                TTL,
                RData::A(A(ANSWER)),
            ));
        }
    }
    resp.to_vec().ok()
}

/// Parses a query name of a check, making it fully qualified.
pub(crate) fn parse_name(s: &str) -> Option<Name> {
    let mut n = Name::from_utf8(s).ok()?;
    n.set_fqdn(true);
    Some(n.to_lowercase())
}
