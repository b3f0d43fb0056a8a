//! The latency table and its JSON form.

use std::collections::BTreeMap;

use shared_proto::latency::{DisplayStage, LatencyHistogram, Series, Stage, Summary};
use shared_proto::wire::ClientStats;
use shared_proto::Eye;

use crate::output::{OutputCounters, OutputState};
use crate::pipeline::PipelineState;

#[derive(Debug, Clone, serde::Serialize)]
pub struct EyeReport {
    pub captured: u64,
    pub sent: u64,
    /// Frames the receiver decoded: markers received (the streamer's count, final).
    pub decoded: u64,
    /// Captured but not decoded, each frame under exactly one cause ([`EyeReport::causes`]:
    /// `dropped_source + dropped_encoder + dropped_queue + dropped_waiting_idr + dropped_link +
    /// dropped_deadline + lost + in_flight = captured − decoded`).
    pub dropped: u64,
    /// Raw frames replaced while the encoder was busy.
    pub dropped_source: u64,
    /// Raw frames the encoder failed on.
    pub dropped_encoder: u64,
    /// Encoded frames dropped from this output's queue: it was behind.
    pub dropped_queue: u64,
    /// Frames not sent while the receiver waited for an IDR (after a drop broke its chain).
    pub dropped_waiting_idr: u64,
    /// Frames the receiver's link could not take in time (WebRTC: the viewer's send budget or
    /// its send queue).
    pub dropped_link: u64,
    /// Encoded frames dropped because they would have been late.
    pub dropped_deadline: u64,
    /// Sent but no marker came back: lost on the link, not decodable (waiting for an IDR),
    /// dropped by the receiver, or its marker still on the way when the output ended. The
    /// receiver's own split is in `receiver_last_stats`.
    pub lost: u64,
    /// Captured, neither sent nor dropped when the output ended (in the encoder or a queue;
    /// for an output that started mid-run, frames already in the pipeline then).
    pub in_flight: u64,
    /// Encoded video bytes sent (parity not counted: see `fec`); its rate is the sent bitrate.
    pub bytes_sent: u64,
    /// The frames carried the pixel code; `wrong_eye`, `code_mismatch` and `unreadable_code`
    /// are checked only then (real cameras: off by default).
    pub pixel_code: bool,
    pub wrong_eye: u64,
    pub code_mismatch: u64,
    pub unreadable_code: u64,
    pub keyframes: u64,
    /// Markers for frames the streamer had no record of.
    pub unmatched_markers: u64,
    /// The receiver's own counters as of its last periodic report (twice a second): up to
    /// half a second behind the streamer's `decoded` at the end, never the final count.
    pub receiver_last_stats: Option<ClientStats>,
    /// Forward error correction (QUIC outputs; `None` when no parity was sent and the
    /// receiver measured no loss).
    pub fec: Option<FecReport>,
    pub bitrate_mbps: f64,
    /// The encoder's bitrate target at the end, set from the receivers' link estimates
    /// (`None`: as configured).
    pub encoder_target_mbps: Option<f64>,
    /// capture → decoded.
    pub latency_ms: Summary,
    pub stages_ms: BTreeMap<&'static str, Summary>,
    /// Every frame since the output started, bucketed (`capture_to_decoded`, each stage, and
    /// `glass_to_glass` when displayed): the Prometheus histograms of `--metrics`.
    pub latency_histogram_ms: BTreeMap<&'static str, LatencyHistogram>,
}

/// One eye's forward error correction, as the sender did it and the receiver saw it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct FecReport {
    pub mode: String,
    pub data_datagrams: u64,
    pub parity_datagrams: u64,
    /// Parity datagrams per data datagram, percent.
    pub overhead_percent: f64,
    /// Datagram loss the receiver measured (of what the headers announced), percent.
    pub measured_loss_percent: f64,
    /// Frames the receiver rebuilt from parity.
    pub repaired: u64,
    /// Selective retransmission: the receiver's requests, the datagrams sent again, and the
    /// requests not answered (too late for the frame's deadline, or no longer kept).
    pub nacks: u64,
    pub resent: u64,
    pub nacks_refused: u64,
}

/// The output's own link estimate at the end (the QUIC path's; WebRTC viewers have TWCC).
#[derive(Debug, Clone, serde::Serialize)]
pub struct LinkReport {
    pub estimate_mbps: f64,
    /// The lowest the estimate was during the session.
    pub lowest_mbps: f64,
    /// The rate that arrived at the last over-use or congestion verdict: the link's last
    /// measured capacity (none before one).
    pub capacity_mbps: Option<f64>,
    /// The path's round-trip time (QUIC's smoothed RTT), milliseconds.
    pub rtt_ms: Option<f64>,
    /// Times the estimate was cut (queueing delay or congestion loss).
    pub decreases: u64,
    pub queue_ms: f64,
}

impl EyeReport {
    /// Every cause a frame can be dropped for, with its count, in pipeline order; with
    /// `in_flight` they add up to `dropped`.
    pub fn causes(&self) -> [(u64, &'static str); 8] {
        [
            (self.dropped_source, "source (encoder busy)"),
            (self.dropped_encoder, "encoder error"),
            (self.dropped_queue, "queue (output behind)"),
            (self.dropped_waiting_idr, "waiting for an IDR"),
            (self.dropped_link, "link (budget or send queue)"),
            (self.dropped_deadline, "deadline"),
            (self.lost, "lost after sending"),
            (self.in_flight, "in flight at the end"),
        ]
    }

    /// The drop causes that occurred, e.g. "2 source + 7 deadline + 4 lost" ("none").
    pub fn drop_causes(&self) -> String {
        let parts: Vec<String> = self
            .causes()
            .iter()
            .filter(|(n, _)| *n > 0)
            .map(|(n, what)| format!("{n} {what}"))
            .collect();
        if parts.is_empty() {
            "none".into()
        } else {
            parts.join(" + ")
        }
    }
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct EyesReport {
    pub left: EyeReport,
    pub right: EyeReport,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct ClockReport {
    /// Client clock − streamer clock.
    pub offset_ns: i64,
    /// Half the lowest RTT: the offset's error bound.
    pub uncertainty_ns: u64,
    pub skew_ppm: f64,
    pub samples_used: usize,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct Report {
    pub eyes: EyesReport,
    /// The link estimate (QUIC outputs).
    pub link: Option<LinkReport>,
    /// Stages of capture → decoded over both eyes; they partition `latency_ms`.
    pub stages_ms: BTreeMap<&'static str, Summary>,
    /// capture → decoded over both eyes.
    pub latency_ms: Summary,
    /// Per frame: capture→decoded minus encode and decode, over both eyes.
    pub overhead_ms: Summary,
    /// decoded → marker back at the streamer (the feedback path, not part of the latency).
    pub marker_return_ms: Summary,
    /// capture → predicted display time, when the client displays (not headless).
    pub glass_to_glass_ms: Option<Summary>,
    /// Over the displayed frames only: the stages of capture → decoded, then upload and
    /// display; they partition `glass_to_glass_ms` (their means add up to its mean).
    pub glass_to_glass_stages_ms: Option<BTreeMap<&'static str, Summary>>,
    /// Encoded video over both eyes.
    pub bitrate_mbps: f64,
    /// Process CPU time per frame (both eyes count; in loopback this includes the client).
    pub cpu_ms_per_frame: f64,
    /// Encoder threads' CPU time per encoded frame.
    pub encode_cpu_ms_per_frame: f64,
    /// On a VM: of the CPU time the machine wanted over the session, the share the hypervisor
    /// gave to other guests (`/proc/stat`'s steal; 0 on bare metal, absent where unknown).
    /// Every stage's latency includes it, and no process's CPU time shows it.
    pub steal_percent: Option<f64>,
    pub clock: Option<ClockReport>,
    /// Live camera rigs: how far apart the two eyes of a pair were captured.
    pub stereo: Option<StereoReport>,
    pub duration_s: f64,
    /// From the process's launch to the first decoded frame of both eyes, ms (the receiver's
    /// decode included; `None` without a marked launch or before both eyes decoded).
    pub launch_to_first_frame_ms: Option<f64>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct StereoReport {
    /// right − left capture time of each pair.
    pub pair_skew_ms: Summary,
    /// Frames dropped because the other camera had no frame from the same instant.
    pub unpaired_left: u64,
    pub unpaired_right: u64,
}

fn histograms(c: &OutputCounters) -> BTreeMap<&'static str, LatencyHistogram> {
    let mut h: BTreeMap<_, _> = Stage::ALL
        .iter()
        .zip(&c.stages)
        .map(|(s, series)| (s.name(), series.histogram().clone()))
        .collect();
    h.insert("capture_to_decoded", c.total.histogram().clone());
    if !c.glass_to_glass.is_empty() {
        h.insert("glass_to_glass", c.glass_to_glass.histogram().clone());
    }
    h
}

fn stages(c: &OutputCounters) -> BTreeMap<&'static str, Summary> {
    Stage::ALL
        .iter()
        .zip(&c.stages)
        .map(|(s, series)| (s.name(), series.summary()))
        .collect()
}

/// Stage names of a displayed frame, in pipeline order.
fn display_stage_names() -> impl Iterator<Item = &'static str> {
    Stage::ALL
        .iter()
        .map(|s| s.name())
        .chain(DisplayStage::ALL.iter().map(|s| s.name()))
}

fn rate(bytes: u64, first: Option<u64>, last: Option<u64>) -> f64 {
    match (first, last) {
        (Some(a), Some(b)) if b > a => bytes as f64 * 8.0 / ((b - a) as f64 / 1e9) / 1e6,
        _ => 0.0,
    }
}

fn fec_report(c: &OutputCounters) -> Option<FecReport> {
    let client = c.client.unwrap_or_default();
    if c.parity_sent == 0 && c.nacks == 0 && client.datagrams_expected == client.datagrams_received
    {
        return None;
    }
    let pct = |a: u64, b: u64| {
        if b > 0 {
            100.0 * a as f64 / b as f64
        } else {
            0.0
        }
    };
    Some(FecReport {
        mode: c.fec.mode().to_string(),
        data_datagrams: c.data_datagrams,
        parity_datagrams: c.parity_sent,
        overhead_percent: pct(c.parity_sent, c.data_datagrams),
        measured_loss_percent: pct(
            client.datagrams_expected - client.datagrams_received.min(client.datagrams_expected),
            client.datagrams_expected,
        ),
        repaired: client.repaired,
        nacks: c.nacks,
        resent: c.resent,
        nacks_refused: c.nacks_refused,
    })
}

impl Report {
    /// The report of one output: its own counters and markers, with the pipeline's counters
    /// over the output's lifetime. `cpu_ns`: the process's CPU time over it (0: not its own to
    /// report, as for one browser viewer among several).
    pub fn build(
        pipeline: &PipelineState,
        state: &OutputState,
        duration_s: f64,
        cpu_ns: u64,
    ) -> Report {
        let mut all_total = Series::default();
        let mut all_stages: [Series; 5] = Default::default();
        let mut marker_return = Series::default();
        let mut overhead = Series::default();
        let mut g2g = Series::default();
        let mut displayed: [Series; 7] = Default::default();
        let (mut bytes, mut first, mut last, mut enc_cpu, mut encoded, mut frames) =
            (0, None::<u64>, None::<u64>, 0, 0, 0);
        let eyes = Eye::BOTH.map(|eye| {
            let c = state.eye(eye);
            let since = state.since(eye);
            let p = pipeline.eye(eye);
            let captured = p.captured - since.captured;
            all_total.extend_from(&c.total);
            for (a, s) in all_stages.iter_mut().zip(&c.stages) {
                a.extend_from(s);
            }
            marker_return.extend_from(&c.marker_return);
            overhead.extend_from(&c.overhead);
            g2g.extend_from(&c.glass_to_glass);
            for (a, s) in displayed.iter_mut().zip(&c.displayed_stages) {
                a.extend_from(s);
            }
            bytes += c.bytes_sent;
            first = match (first, c.first_send_ns) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            last = last.max(c.last_send_ns);
            enc_cpu += p.encode_cpu_ns;
            encoded += p.encoded - since.encoded;
            frames += captured;
            let decoded = c.markers;
            let dropped_source = p.dropped_source - since.dropped_source;
            let dropped_encoder = p.encode_errors - since.encode_errors;
            let dropped = captured.saturating_sub(decoded);
            let mut e = EyeReport {
                captured,
                sent: c.sent,
                decoded,
                dropped,
                dropped_source,
                dropped_encoder,
                dropped_queue: c.dropped_queue,
                dropped_waiting_idr: c.dropped_waiting_idr,
                dropped_link: c.dropped_link,
                dropped_deadline: c.dropped_deadline,
                lost: c.sent.saturating_sub(decoded),
                in_flight: 0,
                bytes_sent: c.bytes_sent,
                pixel_code: c.pixel_code,
                wrong_eye: c.wrong_eye,
                code_mismatch: c.code_mismatch,
                unreadable_code: c.unreadable_code,
                keyframes: p.keyframes - since.keyframes,
                unmatched_markers: c.unmatched_markers,
                receiver_last_stats: c.client,
                fec: fec_report(&c),
                bitrate_mbps: rate(c.bytes_sent, c.first_send_ns, c.last_send_ns),
                encoder_target_mbps: match pipeline.target_bps[eye.index()]
                    .load(std::sync::atomic::Ordering::Relaxed)
                {
                    0 => None,
                    bps => Some(f64::from(bps) / 1e6),
                },
                latency_ms: c.total.summary(),
                stages_ms: stages(&c),
                latency_histogram_ms: histograms(&c),
            };
            // What no cause claims is still between capture and the wire.
            let counted: u64 = e.causes().iter().map(|(n, _)| n).sum();
            e.in_flight = dropped.saturating_sub(counted);
            e
        });
        let clock = state.clock().map(|c| ClockReport {
            offset_ns: c.offset_ns.round() as i64,
            uncertainty_ns: c.uncertainty_ns(),
            skew_ppm: c.skew * 1e6,
            samples_used: c.samples_used,
        });
        let [left, right] = eyes;
        let link = state
            .link
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .map(|l| LinkReport {
                estimate_mbps: l.estimate_bps() as f64 / 1e6,
                lowest_mbps: l.lowest_bps() as f64 / 1e6,
                capacity_mbps: l.capacity_bps().map(|c| c as f64 / 1e6),
                rtt_ms: state.rtt_ms(),
                decreases: l.decreases(),
                queue_ms: l.queue_ns() as f64 / 1e6,
            });
        Report {
            eyes: EyesReport { left, right },
            link,
            stages_ms: Stage::ALL
                .iter()
                .zip(&all_stages)
                .map(|(s, series)| (s.name(), series.summary()))
                .collect(),
            latency_ms: all_total.summary(),
            marker_return_ms: marker_return.summary(),
            overhead_ms: overhead.summary(),
            glass_to_glass_ms: (!g2g.is_empty()).then(|| g2g.summary()),
            glass_to_glass_stages_ms: (!g2g.is_empty()).then(|| {
                display_stage_names()
                    .zip(&displayed)
                    .map(|(name, series)| (name, series.summary()))
                    .collect()
            }),
            bitrate_mbps: rate(bytes, first, last),
            cpu_ms_per_frame: if frames > 0 {
                cpu_ns as f64 / 1e6 / frames as f64
            } else {
                0.0
            },
            encode_cpu_ms_per_frame: if encoded > 0 && cpu_ns > 0 {
                enc_cpu as f64 / 1e6 / encoded as f64
            } else {
                0.0
            },
            steal_percent: None,
            clock,
            stereo: pipeline
                .stereo
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .as_ref()
                .map(|st| StereoReport {
                    pair_skew_ms: st.skew.summary(),
                    unpaired_left: st.unpaired[0],
                    unpaired_right: st.unpaired[1],
                }),
            duration_s,
            launch_to_first_frame_ms: {
                let firsts = Eye::BOTH.map(|e| state.eye(e).first_decoded_ns);
                match (crate::launched_ns(), firsts) {
                    (Some(t0), [Some(l), Some(r)]) => {
                        Some(l.max(r).saturating_sub(t0) as f64 / 1e6)
                    }
                    _ => None,
                }
            },
        }
    }

    /// The human-readable table.
    pub fn to_text(&self) -> String {
        let mut o = String::new();
        o += "eye     captured   sent  decoded  dropped  wrong_eye   capture→decoded ms: mean   p50    p95    p99    max\n";
        for (name, e) in [("left", &self.eyes.left), ("right", &self.eyes.right)] {
            let l = &e.latency_ms;
            o += &format!(
                "{name:<6} {:>9} {:>6} {:>8} {:>8} {:>10}                     {:>6.2} {:>6.2} {:>6.2} {:>6.2} {:>6.2}\n",
                e.captured, e.sent, e.decoded, e.dropped, e.wrong_eye, l.mean, l.p50, l.p95, l.p99, l.max
            );
        }
        o += "\nstage (both eyes)          mean     p50     p95     p99     max   ms\n";
        let row = |o: &mut String, name: &str, s: &Summary| {
            *o += &format!(
                "{name:<22} {:>8.3} {:>7.3} {:>7.3} {:>7.3} {:>7.3}\n",
                s.mean, s.p50, s.p95, s.p99, s.max
            );
        };
        for s in Stage::ALL {
            row(&mut o, s.name(), &self.stages_ms[s.name()]);
        }
        row(&mut o, "= capture→decoded", &self.latency_ms);
        row(&mut o, "(overhead: − enc − dec)", &self.overhead_ms);
        row(&mut o, "(marker return)", &self.marker_return_ms);
        if let (Some(g), Some(st)) = (&self.glass_to_glass_ms, &self.glass_to_glass_stages_ms) {
            o += &format!(
                "\nglass-to-glass, displayed frames ({})   mean     p50     p95     p99     max   ms\n",
                g.count
            );
            for name in display_stage_names() {
                row(&mut o, name, &st[name]);
            }
            row(&mut o, "= glass-to-glass", g);
        }
        if let Some(st) = &self.stereo {
            row(&mut o, "(pair skew R − L)", &st.pair_skew_ms);
            o += &format!(
                "unpaired camera frames: left {} right {}\n",
                st.unpaired_left, st.unpaired_right
            );
        }
        // A WebRTC viewer's report has no CPU figures of its own (the process is shared).
        let cpu = if self.cpu_ms_per_frame > 0.0 {
            format!(
                ", CPU {:.2} ms/frame (encode {:.2} ms/frame){}",
                self.cpu_ms_per_frame,
                self.encode_cpu_ms_per_frame,
                match self.steal_percent {
                    // Below a percent it is the hypervisor's bookkeeping, not a loaded host.
                    Some(p) if p >= 1.0 => format!(
                        "\nsteal {p:.1} % of the machine's CPU time: the host ran other guests, and \
                         every latency above includes the wait"
                    ),
                    _ => String::new(),
                }
            )
        } else {
            String::new()
        };
        o += &format!(
            "\nbitrate {:.2} Mbit/s (both eyes){cpu}\n",
            self.bitrate_mbps
        );
        for (name, e) in [("left", &self.eyes.left), ("right", &self.eyes.right)] {
            o += &format!("dropped {name:<5} {:>5} = {}\n", e.dropped, e.drop_causes());
        }
        let uncoded: Vec<&str> = [("left", &self.eyes.left), ("right", &self.eyes.right)]
            .into_iter()
            .filter(|(_, e)| !e.pixel_code)
            .map(|(n, _)| n)
            .collect();
        if !uncoded.is_empty() {
            o += &format!(
                "no pixel code on {} (a camera's picture): wrong_eye is not checked; \
                 eyes.*.pixel_code: true measures it (drawn over the top band)\n",
                uncoded.join(" and ")
            );
        }
        for (name, e) in [("left", &self.eyes.left), ("right", &self.eyes.right)] {
            if let Some(f) = &e.fec {
                o += &format!(
                    "FEC {name} ({}): {} parity datagrams for {} data ({:.1} % overhead), {:.2} % of datagrams lost on the link, {} frames repaired; {} requests for lost fragments, {} datagrams sent again, {} too late\n",
                    f.mode, f.parity_datagrams, f.data_datagrams, f.overhead_percent, f.measured_loss_percent, f.repaired, f.nacks, f.resent, f.nacks_refused
                );
            }
        }
        if let Some(l) = &self.link {
            o += &format!(
                "link estimate {:.1} Mbit/s (cut {} times{}; queueing delay {:.1} ms at the end), encoders at {}\n",
                l.estimate_mbps,
                l.decreases,
                if l.decreases > 0 {
                    format!(
                        ", to {:.1} at the lowest{}",
                        l.lowest_mbps,
                        l.capacity_mbps
                            .map(|c| format!(", {c:.1} Mbit/s arrived at the last cut"))
                            .unwrap_or_default()
                    )
                } else {
                    String::new()
                },
                l.queue_ms,
                match (self.eyes.left.encoder_target_mbps, self.eyes.right.encoder_target_mbps) {
                    (Some(a), Some(b)) => format!("{a:.2} + {b:.2} Mbit/s"),
                    _ => "their configured bitrate".into(),
                }
            );
        }
        if let Some(ms) = self.launch_to_first_frame_ms {
            o += &format!("launch to the first decoded frame of both eyes: {ms:.0} ms\n");
        }
        if let Some(c) = &self.clock {
            o += &format!(
                "clock: offset {} ns ± {} ns, drift {:.1} ppm ({} samples)\n",
                c.offset_ns, c.uncertainty_ns, c.skew_ppm, c.samples_used
            );
        }
        o
    }
}
