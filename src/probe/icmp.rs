//! ICMP echo round: N paced echo requests, RTT min/avg/max, jitter and loss.
//!
//! Jitter is the population standard deviation of the RTTs received in the round.
//! `udp_echo_port` sends the same round as UDP echo (RFC 862) instead: for networks that filter
//! ICMP, and for the demo simulator (loopback ICMP cannot be delayed or dropped without netem).

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{BuildContext, BuildError, Details, Outcome, Reason};

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
    /// Send the round as UDP echo to this port instead of ICMP.
    #[serde(default)]
    pub udp_echo_port: Option<u16>,
    /// ICMP payload size in bytes.
    #[serde(default = "default_payload")]
    pub payload_bytes: u16,
}

fn default_payload() -> u16 {
    56
}

/// Packets, pacing and loss limit of a round (from the link class, overridable per check).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RoundShape {
    pub packets: u32,
    pub pacing: Duration,
    pub max_loss: f64,
}

impl Default for RoundShape {
    fn default() -> Self {
        RoundShape {
            packets: 5,
            pacing: Duration::from_millis(200),
            max_loss: 0.5,
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

#[derive(Debug)]
pub struct IcmpProbe {
    spec: IcmpSpec,
    shape: RoundShape,
}

impl IcmpProbe {
    pub fn build(spec: &IcmpSpec, ctx: &BuildContext) -> Result<Self, BuildError> {
        let shape = RoundShape {
            packets: spec.packets.unwrap_or(ctx.round.packets),
            pacing: spec.pacing.unwrap_or(ctx.round.pacing),
            max_loss: spec.max_loss.unwrap_or(ctx.round.max_loss),
        };
        Ok(IcmpProbe {
            spec: spec.clone(),
            shape,
        })
    }

    pub fn shape(&self) -> RoundShape {
        self.shape
    }

    pub async fn run(&self, timeout: Duration) -> Outcome {
        let _ = (timeout, &self.spec);
        Outcome::fail(Reason::Protocol, "not implemented", Details::Icmp(IcmpDetails::default()))
    }
}
