//! ICMP echo round: N paced echo requests, RTT min/avg/max, jitter and loss.
//!
//! Jitter is the population standard deviation of the RTTs received in the round (not the RFC 3550
//! interarrival estimator: a round is a handful of packets, and the spread is what operators read).
//! `udp_echo_port` sends the same round as UDP echo (RFC 862) instead: for networks that filter
//! ICMP, and for the demo simulator (loopback ICMP cannot be delayed or dropped without netem).
//!
//! Timing: packet `i` leaves at `i × pacing` after the socket is ready and every packet waits for
//! its reply until the round's deadline (`timeout` after `run` began). When `packets × pacing`
//! does not fit in what is left of the budget, pacing shrinks to `budget / packets`, so the last
//! packet still gets one pacing interval to be answered and the round never exceeds `timeout`.

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use surge_ping::{Client, Config, IcmpPacket, PingIdentifier, PingSequence, SurgeError, ICMP};
use tokio::time::{sleep_until, timeout_at, Instant};

use super::{BuildContext, BuildError, Details, Outcome, Reason};

mod udp_echo;

/// `probe.icmp = { … }` in `probes.toml`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct IcmpSpec {
    pub host: String,
    /// Echo requests per round; default from the link class.
    #[serde(default)]
    pub packets: Option<u32>,
    /// Gap between requests; default from the link class.
    #[serde(default, with = "humantime_serde")]
    pub pacing: Option<Duration>,
    /// Loss ratio above which the round fails; default from the link class.
    #[serde(default)]
    pub max_loss: Option<f64>,
    /// How long each request waits for its reply; default from the link class.
    #[serde(default, with = "humantime_serde")]
    pub reply_timeout: Option<Duration>,
    /// Send the round as UDP echo to this port instead of ICMP.
    #[serde(default)]
    pub udp_echo_port: Option<u16>,
    /// ICMP payload size in bytes (UDP echo: datagram size, at least 12).
    #[serde(default = "default_payload")]
    pub payload_bytes: u16,
}

fn default_payload() -> u16 {
    56
}

/// Largest payload: one unfragmented Ethernet frame (surge-ping also reads into a 2 KiB buffer).
const MAX_PAYLOAD: u16 = 1472;
/// More packets than this per round is a flood, not a probe.
const MAX_PACKETS: u32 = 1000;

const PERMISSION_HINT: &str = "ICMP needs an unprivileged datagram socket (allow the process's \
group with `sysctl -w net.ipv4.ping_group_range=\"0 2147483647\"`) or a raw socket (run as root \
or grant CAP_NET_RAW, e.g. `setcap cap_net_raw+ep` or systemd AmbientCapabilities=CAP_NET_RAW); \
checks behind ICMP filters can use udp_echo_port instead";

/// Packets, pacing and loss limit of a round (from the link class, overridable per check).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RoundShape {
    pub packets: u32,
    pub pacing: Duration,
    pub max_loss: f64,
    /// How long each echo request waits for its reply. A round ends when every reply is in or
    /// the last request's wait is over, so a dead link is known in `packets × pacing +
    /// reply_timeout`, not only at the check's timeout.
    pub reply_timeout: Duration,
}

impl Default for RoundShape {
    fn default() -> Self {
        RoundShape {
            packets: 5,
            pacing: Duration::from_millis(200),
            max_loss: 0.5,
            reply_timeout: Duration::from_secs(2),
        }
    }
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct IcmpDetails {
    pub sent: u32,
    pub received: u32,
    /// RTT of each received reply, seconds, in send order.
    pub rtts: Vec<f64>,
    pub rtt_min: Option<f64>,
    pub rtt_avg: Option<f64>,
    pub rtt_max: Option<f64>,
    /// Population standard deviation of the RTTs, seconds.
    pub jitter: Option<f64>,
    pub loss_ratio: f64,
    pub resolve: Option<f64>,
    pub setup: Option<f64>,
    /// `raw`, `dgram` or `udp_echo`.
    pub socket: &'static str,
}

/// RTT summary of one round, seconds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RttStats {
    pub min: f64,
    pub avg: f64,
    pub max: f64,
    /// Population standard deviation (divides by n, not n − 1): the round is the population.
    pub stddev: f64,
}

/// Min/avg/max/population std dev of `rtts`; `None` when there is none.
pub fn rtt_stats(rtts: &[f64]) -> Option<RttStats> {
    if rtts.is_empty() {
        return None;
    }
    let n = rtts.len() as f64;
    let min = rtts.iter().copied().fold(f64::INFINITY, f64::min);
    let max = rtts.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let avg = rtts.iter().sum::<f64>() / n;
    let var = rtts.iter().map(|r| (r - avg).powi(2)).sum::<f64>() / n;
    Some(RttStats {
        min,
        avg,
        max,
        stddev: var.sqrt(),
    })
}

/// `1 − received/sent`; 1.0 when nothing was sent (nothing got through).
pub fn loss_ratio(sent: u32, received: u32) -> f64 {
    if sent == 0 {
        return 1.0;
    }
    1.0 - f64::from(received.min(sent)) / f64::from(sent)
}

/// Gap between sends so that `packets` fit in `budget` with one gap left for the last reply.
pub fn effective_pacing(packets: u32, pacing: Duration, budget: Duration) -> Duration {
    if packets <= 1 || pacing.saturating_mul(packets) <= budget {
        pacing
    } else {
        budget / packets
    }
}

/// Which ICMP sockets this process may open (IPv4), for the startup message.
#[derive(Debug, Clone, Serialize)]
pub struct IcmpCapability {
    pub dgram: bool,
    pub raw: bool,
    pub dgram_error: Option<String>,
    pub raw_error: Option<String>,
}

impl IcmpCapability {
    /// The socket ICMP rounds will use (`dgram` is preferred), if any.
    pub fn socket(&self) -> Option<&'static str> {
        match (self.dgram, self.raw) {
            (true, _) => Some("dgram"),
            (false, true) => Some("raw"),
            (false, false) => None,
        }
    }

    /// One line for the startup log.
    pub fn summary(&self) -> String {
        match self.socket() {
            Some(s) => format!("ICMP probes use {s} sockets"),
            None => format!(
                "ICMP probes cannot run (datagram: {}; raw: {}): {PERMISSION_HINT}",
                self.dgram_error.as_deref().unwrap_or("?"),
                self.raw_error.as_deref().unwrap_or("?"),
            ),
        }
    }
}

/// Tries to open (and closes again) a datagram and a raw ICMPv4 socket.
pub fn icmp_capability() -> IcmpCapability {
    use socket2::{Domain, Protocol, Socket, Type};
    let open = |ty| Socket::new(Domain::IPV4, ty, Some(Protocol::ICMPV4)).map(drop);
    let dgram = open(Type::DGRAM);
    let raw = open(Type::RAW);
    IcmpCapability {
        dgram: dgram.is_ok(),
        raw: raw.is_ok(),
        dgram_error: dgram.err().map(|e| e.to_string()),
        raw_error: raw.err().map(|e| e.to_string()),
    }
}

/// One surge-ping client (one socket + one receive task) per address family, shared by every
/// round. surge-ping spawns its receive task on the current runtime, so the client is keyed by
/// runtime id (production has one runtime; tests create many).
static CLIENTS: Mutex<[Option<(tokio::runtime::Id, Client)>; 2]> = Mutex::new([None, None]);

/// Sequence numbers are allocated globally: on datagram sockets the kernel owns the identifier,
/// so (host, sequence) alone must keep concurrent rounds to the same host apart.
static NEXT_SEQ: AtomicU16 = AtomicU16::new(0);

fn shared_client(v6: bool) -> std::io::Result<Client> {
    let rt = tokio::runtime::Handle::current().id();
    let mut slots = CLIENTS.lock().unwrap_or_else(|e| e.into_inner());
    let slot = &mut slots[usize::from(v6)];
    if let Some((id, client)) = slot.as_ref() {
        if *id == rt {
            return Ok(client.clone());
        }
    }
    // DGRAM first (no privilege needed); surge-ping falls back to RAW by itself.
    let kind = if v6 { ICMP::V6 } else { ICMP::V4 };
    let config = Config::builder()
        .kind(kind)
        .sock_type_hint(socket2::Type::DGRAM)
        .build();
    let client = Client::new(&config)?;
    *slot = Some((rt, client.clone()));
    Ok(client)
}

#[derive(Debug)]
pub struct IcmpProbe {
    spec: IcmpSpec,
    shape: RoundShape,
}

/// What one round observed, before evaluation.
struct Round {
    sent: u32,
    /// Per send index: the RTT if a matching reply came.
    rtts: Vec<Option<Duration>>,
    /// Most specific thing that went wrong (send error, unreachable, refused), if any.
    error: Option<(Reason, String)>,
}

impl IcmpProbe {
    pub fn build(spec: &IcmpSpec, ctx: &BuildContext) -> Result<Self, BuildError> {
        let shape = RoundShape {
            packets: spec.packets.unwrap_or(ctx.round.packets),
            pacing: spec.pacing.unwrap_or(ctx.round.pacing),
            max_loss: spec.max_loss.unwrap_or(ctx.round.max_loss),
            reply_timeout: spec.reply_timeout.unwrap_or(ctx.round.reply_timeout),
        };
        let (n, loss, payload) = (shape.packets, shape.max_loss, spec.payload_bytes);
        let problem = if spec.host.trim().is_empty() {
            Some(("host", "must not be empty".to_string()))
        } else if !(1..=MAX_PACKETS).contains(&n) {
            Some(("packets", format!("must be 1 to {MAX_PACKETS}, got {n}")))
        } else if !(0.0..=1.0).contains(&loss) {
            Some(("max_loss", format!("must be 0 to 1, got {loss}")))
        } else if payload > MAX_PAYLOAD {
            Some((
                "payload_bytes",
                format!("must be at most {MAX_PAYLOAD}, got {payload}"),
            ))
        } else {
            None
        };
        if let Some((field, message)) = problem {
            return Err(BuildError::Invalid { field, message });
        }
        Ok(IcmpProbe {
            spec: spec.clone(),
            shape,
        })
    }

    pub fn shape(&self) -> RoundShape {
        self.shape
    }

    pub async fn run(&self, timeout: Duration) -> Outcome {
        let deadline = Instant::now() + timeout;
        let mut d = IcmpDetails {
            socket: if self.spec.udp_echo_port.is_some() {
                "udp_echo"
            } else {
                ""
            },
            loss_ratio: 1.0,
            ..IcmpDetails::default()
        };
        let host = &self.spec.host;
        let port = self.spec.udp_echo_port.unwrap_or(0);

        let started = Instant::now();
        let target = match timeout_at(deadline, super::resolve(host, port)).await {
            Err(_) => {
                let msg = format!("resolving {host} did not finish within {timeout:?}");
                return Outcome::fail(Reason::Timeout, msg, Details::Icmp(d));
            }
            Ok(Err(e)) => {
                let msg = format!("cannot resolve {host}: {e}");
                return Outcome::fail(Reason::Dns, msg, Details::Icmp(d));
            }
            // `resolve` puts IPv4 first.
            Ok(Ok(addrs)) => match addrs.first() {
                Some(a) => *a,
                None => {
                    let msg = format!("{host} has no address");
                    return Outcome::fail(Reason::Dns, msg, Details::Icmp(d));
                }
            },
        };
        d.resolve = Some(started.elapsed().as_secs_f64());

        let round = if self.spec.udp_echo_port.is_some() {
            let payload = self.spec.payload_bytes;
            udp_echo::round(target, self.shape, payload, deadline, &mut d).await
        } else {
            self.icmp_round(target.ip(), deadline, &mut d).await
        };
        let round = match round {
            Ok(r) => r,
            Err((reason, msg)) => return Outcome::fail(reason, msg, Details::Icmp(d)),
        };
        self.evaluate(round, target, timeout, d)
    }

    fn evaluate(
        &self,
        round: Round,
        target: SocketAddr,
        timeout: Duration,
        mut d: IcmpDetails,
    ) -> Outcome {
        let rtts: Vec<f64> = round
            .rtts
            .iter()
            .flatten()
            .map(Duration::as_secs_f64)
            .collect();
        d.sent = round.sent;
        d.received = rtts.len() as u32;
        d.loss_ratio = loss_ratio(d.sent, d.received);
        if let Some(s) = rtt_stats(&rtts) {
            (d.rtt_min, d.rtt_avg, d.rtt_max, d.jitter) =
                (Some(s.min), Some(s.avg), Some(s.max), Some(s.stddev));
        }
        d.rtts = rtts;
        let (sent, received, loss) = (d.sent, d.received, d.loss_ratio);
        if sent == 0 {
            let msg = format!("no packet to {target} could be sent within {timeout:?}");
            return Outcome::fail(Reason::Timeout, msg, Details::Icmp(d));
        }
        if received == 0 {
            if let Some((reason, msg)) = round.error {
                return Outcome::fail(reason, msg, Details::Icmp(d));
            }
            let msg =
                format!("100% loss: no reply from {target} to {sent} packets within {timeout:?}");
            return Outcome::fail(Reason::PacketLoss, msg, Details::Icmp(d));
        }
        if loss > self.shape.max_loss {
            let msg = format!(
                "lost {} of {sent} packets to {target} ({:.1}% > allowed {:.1}%)",
                sent - received,
                loss * 100.0,
                self.shape.max_loss * 100.0
            );
            return Outcome::fail(Reason::PacketLoss, msg, Details::Icmp(d));
        }
        Outcome::ok(Details::Icmp(d))
    }

    async fn icmp_round(
        &self,
        ip: IpAddr,
        deadline: Instant,
        d: &mut IcmpDetails,
    ) -> Result<Round, (Reason, String)> {
        let setup = Instant::now();
        let client = shared_client(ip.is_ipv6()).map_err(|e| {
            let reason = match e.kind() {
                std::io::ErrorKind::PermissionDenied => Reason::Permission,
                _ => Reason::Connect,
            };
            (
                reason,
                format!("cannot open an ICMP socket: {e}. {PERMISSION_HINT}"),
            )
        })?;
        d.setup = Some(setup.elapsed().as_secs_f64());
        d.socket = if client.get_socket().get_type() == socket2::Type::DGRAM {
            "dgram"
        } else {
            "raw"
        };

        let n = self.shape.packets;
        // n ≤ MAX_PACKETS < 2^16, so the block of sequence numbers never overlaps itself.
        let seq_base = NEXT_SEQ.fetch_add(n as u16, Ordering::Relaxed);
        let ident = PingIdentifier(rand::random());
        let payload = vec![0x5a_u8; usize::from(self.spec.payload_bytes)];
        let t0 = Instant::now();
        let pacing = effective_pacing(n, self.shape.pacing, deadline.saturating_duration_since(t0));

        let reply_timeout = self.shape.reply_timeout;
        let pings = (0..n).map(|i| {
            let (client, payload) = (&client, &payload);
            async move {
                let at = t0 + pacing * i;
                if at >= deadline {
                    return None;
                }
                sleep_until(at).await;
                let mut pinger = client.pinger(ip, ident).await;
                let wait_until = deadline.min(Instant::now() + reply_timeout);
                pinger.timeout(wait_until.saturating_duration_since(Instant::now()));
                let seq = PingSequence(seq_base.wrapping_add(i as u16));
                Some(
                    match timeout_at(wait_until, pinger.ping(seq, payload)).await {
                        Err(_) | Ok(Err(SurgeError::Timeout { .. })) => Ok(None),
                        Ok(Ok((packet, rtt))) => classify_reply(&packet, rtt),
                        Ok(Err(SurgeError::IOError(e))) => Err((
                            Reason::Connect,
                            format!("sending ICMP echo to {ip} failed: {e}"),
                        )),
                        Ok(Err(e)) => {
                            Err((Reason::Connect, format!("ICMP echo to {ip} failed: {e}")))
                        }
                    },
                )
            }
        });
        let results = futures::future::join_all(pings).await;

        let mut round = Round {
            sent: 0,
            rtts: Vec::with_capacity(results.len()),
            error: None,
        };
        for r in results.into_iter().flatten() {
            round.sent += 1;
            match r {
                Ok(rtt) => round.rtts.push(rtt),
                Err(e) => {
                    round.rtts.push(None);
                    round.error.get_or_insert(e);
                }
            }
        }
        Ok(round)
    }
}

/// An echo reply counts; an ICMP error (unreachable, time exceeded) is a loss with a reason.
fn classify_reply(
    packet: &IcmpPacket,
    rtt: Duration,
) -> Result<Option<Duration>, (Reason, String)> {
    let (ty, code, from, is_reply) = match packet {
        IcmpPacket::V4(p) => {
            let ty = p.get_icmp_type().0;
            (ty, p.get_icmp_code().0, IpAddr::V4(p.get_source()), ty == 0)
        }
        IcmpPacket::V6(p) => {
            let ty = p.get_icmpv6_type().0;
            (
                ty,
                p.get_icmpv6_code().0,
                IpAddr::V6(p.get_source()),
                ty == 129,
            )
        }
    };
    if is_reply {
        return Ok(Some(rtt));
    }
    let msg = format!("ICMP error type {ty} code {code} from {from} (unreachable, TTL …)");
    Err((Reason::Connect, msg))
}
