//! The round over UDP echo (RFC 862): each datagram is an 8-byte round id, a 4-byte sequence
//! number and padding up to `payload_bytes` (at least 12), sent from a fresh ephemeral socket.
//! Only an intact echo of one of this round's datagrams counts; anything else is ignored.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use tokio::net::UdpSocket;
use tokio::time::{sleep_until, Instant};

use super::{effective_pacing, IcmpDetails, Round, RoundShape};
use crate::probe::Reason;

/// UDP echo header: 8-byte round id + 4-byte sequence number.
const HEADER: usize = 12;

pub(super) async fn round(
    target: SocketAddr,
    shape: RoundShape,
    payload_bytes: u16,
    deadline: Instant,
    d: &mut IcmpDetails,
) -> Result<Round, (Reason, String)> {
    let fail = |what: &str, e: std::io::Error| {
        let msg = format!("UDP echo to {target}: {what}: {e}");
        (Reason::from_connect_error(&e), msg)
    };
    let setup = Instant::now();
    let bind: SocketAddr = match target {
        SocketAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
        SocketAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, 0).into(),
    };
    let sock = UdpSocket::bind(bind).await.map_err(|e| fail("bind", e))?;
    // Connected: the kernel drops datagrams from other peers and reports port-unreachable.
    sock.connect(target).await.map_err(|e| fail("connect", e))?;
    d.setup = Some(setup.elapsed().as_secs_f64());

    let n = shape.packets as usize;
    let len = usize::from(payload_bytes).max(HEADER);
    let round_id: u64 = rand::random();
    let mut sent_at: Vec<Option<Instant>> = vec![None; n];
    let mut rtts: Vec<Option<Duration>> = vec![None; n];
    let mut error = None;
    let (mut next, mut received) = (0usize, 0usize);
    // One byte more than expected, so an over-long (garbled) datagram is recognisable.
    let mut buf = vec![0u8; len + 1];
    let t0 = Instant::now();
    let budget = deadline.saturating_duration_since(t0);
    let pacing = effective_pacing(shape.packets, shape.pacing, budget);

    while !(next == n && received == n) {
        let send_at = t0 + pacing * next as u32;
        // Once everything is sent, the round ends when the last request's wait is over.
        let round_end = match sent_at.get(n.wrapping_sub(1)).copied().flatten() {
            Some(last) if next == n => deadline.min(last + shape.reply_timeout),
            _ => deadline,
        };
        tokio::select! {
            biased;
            r = sock.recv(&mut buf) => match r {
                Ok(k) => {
                    // Foreign, garbled, duplicate or never sent: ignored.
                    let Some(seq) = match_echo(&buf[..k], round_id, len) else { continue };
                    let (at, slot) = (sent_at.get(seq), rtts.get_mut(seq));
                    if let (Some(Some(at)), Some(slot @ None)) = (at, slot) {
                        // A reply later than its own wait counts as lost, as with ICMP.
                        if at.elapsed() <= shape.reply_timeout {
                            *slot = Some(at.elapsed());
                            received += 1;
                        }
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                    let msg = format!("{target} refused UDP echo (ICMP port unreachable)");
                    error.get_or_insert((Reason::ConnectRefused, msg));
                }
                Err(e) => {
                    error.get_or_insert(fail("receive", e));
                }
            },
            _ = sleep_until(round_end) => break,
            _ = sleep_until(send_at), if next < n => {
                sent_at[next] = Some(Instant::now());
                // A send error (e.g. a pending port-unreachable) makes this packet a loss.
                if let Err(e) = sock.send(&datagram(round_id, next as u32, len)).await {
                    error.get_or_insert(fail("send", e));
                }
                next += 1;
            }
        }
    }
    Ok(Round {
        sent: next as u32,
        rtts: rtts.into_iter().take(next).collect(),
        error,
    })
}

/// The datagram for `seq`: round id, sequence, then a fixed padding pattern.
fn datagram(round_id: u64, seq: u32, len: usize) -> Vec<u8> {
    let mut b = Vec::with_capacity(len);
    b.extend_from_slice(&round_id.to_be_bytes());
    b.extend_from_slice(&seq.to_be_bytes());
    b.resize(len, 0x5a);
    b
}

/// The sequence number of an intact echo of one of this round's datagrams.
fn match_echo(got: &[u8], round_id: u64, len: usize) -> Option<usize> {
    if got.len() != len {
        return None;
    }
    let seq = u32::from_be_bytes(got.get(8..HEADER)?.try_into().ok()?);
    (got == datagram(round_id, seq, len).as_slice()).then_some(seq as usize)
}
