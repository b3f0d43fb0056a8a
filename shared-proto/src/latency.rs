//! Per-frame latency arithmetic.
//!
//! A frame's capture→decoded latency is split into stages that partition it exactly: the
//! stages of one frame add up to its total, so their means add up to the mean total. Client
//! timestamps are mapped onto the streamer clock with one [`ClockEstimate`] per frame; only the
//! one boundary that crosses the network (send → last byte) depends on that mapping, and the
//! stages after it are differences of client timestamps, so they are exact.

use crate::clock::ClockEstimate;
use crate::wire::{FrameMarker, FrameTiming};
use crate::Nanos;

/// The stages, in pipeline order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Stage {
    /// Sensor timestamp (start of exposure) → the encoder takes the frame.
    CaptureToEncode,
    /// Encoding.
    Encode,
    /// Encoded → the sender takes it to put on the wire (queueing behind the other eye).
    SendQueue,
    /// First datagram sent → last byte received by the client (pacing + network + reassembly).
    Network,
    /// Last byte received → decoded picture (decode queue + decode + pixel-code read).
    Decode,
}

impl Stage {
    pub const ALL: [Stage; 5] = [
        Stage::CaptureToEncode,
        Stage::Encode,
        Stage::SendQueue,
        Stage::Network,
        Stage::Decode,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Stage::CaptureToEncode => "capture_to_encode",
            Stage::Encode => "encode",
            Stage::SendQueue => "send_queue",
            Stage::Network => "network",
            Stage::Decode => "decode",
        }
    }
}

/// One frame's timeline on the streamer clock, in nanoseconds relative to capture.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FrameLatency {
    /// Stage durations in [`Stage::ALL`] order (signed: a clock estimate off by more than the
    /// true network delay can make the network stage negative, and that is shown, not hidden).
    pub stages_ns: [i64; 5],
    /// capture → decoded.
    pub total_ns: i64,
    /// decoded → the marker reached the streamer (the feedback path; not part of the total).
    pub marker_return_ns: Option<i64>,
    /// capture → predicted display time (glass-to-glass), when the client displays frames.
    pub glass_to_glass_ns: Option<i64>,
    /// When displayed: decoded → handed to the display ([`DisplayStage::Upload`]) and → displayed
    /// ([`DisplayStage::Display`]). With the stages they partition `glass_to_glass_ns`.
    pub display_stages_ns: Option<[i64; 2]>,
}

/// The stages after decode, for frames the client displayed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DisplayStage {
    /// Decoded → handed to the display (colour conversion, waiting for the frame loop, upload).
    Upload,
    /// Handed to the display → displayed (render and present; XR: predicted display time).
    Display,
}

impl DisplayStage {
    pub const ALL: [DisplayStage; 2] = [DisplayStage::Upload, DisplayStage::Display];

    pub fn name(self) -> &'static str {
        match self {
            DisplayStage::Upload => "upload",
            DisplayStage::Display => "display",
        }
    }
}

/// Combines the streamer's own timestamps with the client's marker.
pub fn frame_latency(
    timing: &FrameTiming,
    marker: &FrameMarker,
    clock: &ClockEstimate,
    marker_received_ns: Option<Nanos>,
) -> FrameLatency {
    // A marker comes from the other side: any u64 may arrive. Every difference saturates (a
    // nonsense time gives a nonsense, bounded figure, never an overflow).
    let d = |a: Nanos, b: Nanos| -> i64 {
        let (a, b) = (i128::from(a), i128::from(b));
        (a - b).clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64
    };
    let cap = timing.capture_ns;
    let last_byte = clock.client_to_streamer(marker.last_byte_ns);
    // Client-side durations are exact differences on the client clock.
    let decode = d(marker.decoded_ns, marker.last_byte_ns);
    let decoded = last_byte.saturating_add_signed(decode);
    let stages_ns = [
        d(timing.encode_start_ns, cap),
        d(timing.encode_end_ns, timing.encode_start_ns),
        d(timing.send_ns, timing.encode_end_ns),
        d(last_byte, timing.send_ns),
        decode,
    ];
    FrameLatency {
        stages_ns,
        total_ns: d(decoded, cap),
        marker_return_ns: marker_received_ns.map(|r| d(r, decoded)),
        glass_to_glass_ns: marker.display_ns.map(|disp| {
            d(
                last_byte.saturating_add_signed(d(disp, marker.last_byte_ns)),
                cap,
            )
        }),
        display_stages_ns: marker.display_ns.map(|disp| {
            // Without a hand-over time the whole span counts as display.
            let presented = marker.presented_ns.unwrap_or(marker.decoded_ns);
            [d(presented, marker.decoded_ns), d(disp, presented)]
        }),
    }
}

/// Summary statistics of one series, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Default, serde::Serialize)]
pub struct Summary {
    pub count: usize,
    pub mean: f64,
    pub p50: f64,
    pub p95: f64,
    pub p99: f64,
    pub max: f64,
    pub min: f64,
}

/// Upper bounds of [`LatencyHistogram`]'s buckets, milliseconds (then one for everything
/// above): fine where a frame's stages live (1–30 ms), coarse for spikes.
pub const HISTOGRAM_BOUNDS_MS: [f64; 17] = [
    0.5, 1.0, 2.0, 3.0, 5.0, 7.5, 10.0, 15.0, 20.0, 25.0, 30.0, 40.0, 50.0, 75.0, 100.0, 200.0,
    500.0,
];

/// Every sample ever pushed, counted into fixed buckets (cumulative, constant memory): what a
/// Prometheus histogram exposes, where [`Summary`] covers only the samples a [`Series`] keeps.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct LatencyHistogram {
    /// Samples per bucket: `counts[i]` are those ≤ `le_ms[i]` and above the bound before;
    /// the last counts everything above the last bound.
    pub counts: [u64; HISTOGRAM_BOUNDS_MS.len() + 1],
    pub le_ms: [f64; HISTOGRAM_BOUNDS_MS.len()],
    pub sum_ms: f64,
    pub count: u64,
}

impl LatencyHistogram {
    pub fn new() -> Self {
        LatencyHistogram {
            le_ms: HISTOGRAM_BOUNDS_MS,
            ..Default::default()
        }
    }

    pub fn observe(&mut self, v_ns: i64) {
        let ms = v_ns as f64 / 1e6;
        let i = HISTOGRAM_BOUNDS_MS
            .iter()
            .position(|&b| ms <= b)
            .unwrap_or(HISTOGRAM_BOUNDS_MS.len());
        self.counts[i] += 1;
        self.count += 1;
        self.sum_ms += ms;
    }

    pub fn merge(&mut self, other: &LatencyHistogram) {
        for (a, b) in self.counts.iter_mut().zip(other.counts) {
            *a += b;
        }
        self.count += other.count;
        self.sum_ms += other.sum_ms;
        self.le_ms = HISTOGRAM_BOUNDS_MS;
    }
}

/// A bounded series of samples (the newest `capacity` are kept), and the histogram of all.
#[derive(Debug, Clone)]
pub struct Series {
    values: std::collections::VecDeque<i64>,
    capacity: usize,
    histogram: LatencyHistogram,
}

impl Default for Series {
    fn default() -> Self {
        Series::with_capacity(1 << 16)
    }
}

impl Series {
    pub fn with_capacity(capacity: usize) -> Self {
        Series {
            values: Default::default(),
            capacity: capacity.max(1),
            histogram: LatencyHistogram::new(),
        }
    }

    pub fn push(&mut self, v_ns: i64) {
        self.keep(v_ns);
        self.histogram.observe(v_ns);
    }

    fn keep(&mut self, v_ns: i64) {
        if self.values.len() == self.capacity {
            self.values.pop_front();
        }
        self.values.push_back(v_ns);
    }

    /// Every sample ever pushed (not only those kept), bucketed.
    pub fn histogram(&self) -> &LatencyHistogram {
        &self.histogram
    }

    pub fn len(&self) -> usize {
        self.values.len()
    }

    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// The samples, oldest first (nanoseconds).
    pub fn iter(&self) -> impl Iterator<Item = i64> + '_ {
        self.values.iter().copied()
    }

    /// Appends every sample of `other` (its histogram: every sample it ever had).
    pub fn extend_from(&mut self, other: &Series) {
        for v in other.iter() {
            self.keep(v);
        }
        self.histogram.merge(&other.histogram);
    }

    /// Forgets the kept samples (the histogram stays: it only ever grows).
    pub fn clear(&mut self) {
        self.values.clear();
    }

    /// Mean and nearest-rank percentiles, in milliseconds.
    pub fn summary(&self) -> Summary {
        self.summary_recent(self.values.len())
    }

    /// [`Series::summary`] of the newest `n` samples (a live display's window).
    pub fn summary_recent(&self, n: usize) -> Summary {
        let skip = self.values.len().saturating_sub(n);
        let mut v: Vec<i64> = self.values.iter().skip(skip).copied().collect();
        if v.is_empty() {
            return Summary::default();
        }
        v.sort_unstable();
        let ms = |ns: i64| ns as f64 / 1e6;
        let pct = |p: f64| {
            let rank = ((p / 100.0) * v.len() as f64).ceil() as usize;
            ms(v[rank.clamp(1, v.len()) - 1])
        };
        Summary {
            count: v.len(),
            mean: v.iter().map(|&x| x as f64).sum::<f64>() / v.len() as f64 / 1e6,
            p50: pct(50.0),
            p95: pct(95.0),
            p99: pct(99.0),
            max: ms(*v.last().expect("non-empty")),
            min: ms(v[0]),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Eye;

    #[test]
    fn the_histogram_counts_every_sample_even_those_the_series_forgot() {
        let mut s = Series::with_capacity(4);
        for ms in [0.2, 1.0, 1.5, 12.0, 600.0, -3.0] {
            s.push((ms * 1e6) as i64);
        }
        assert_eq!(s.len(), 4);
        let h = s.histogram();
        assert_eq!(h.count, 6);
        assert_eq!(h.counts.iter().sum::<u64>(), 6);
        assert_eq!(h.counts[0], 2, "0.2 ms and a negative sample: ≤ 0.5");
        assert_eq!(h.counts[1], 1, "1.0 ms: ≤ 1 (bounds are inclusive)");
        assert_eq!(h.counts[2], 1, "1.5 ms");
        assert_eq!(h.counts[7], 1, "12 ms: ≤ 15");
        assert_eq!(h.counts[17], 1, "600 ms: above every bound");
        assert!((h.sum_ms - 611.7).abs() < 1e-9);
        let mut all = Series::default();
        all.extend_from(&s);
        all.extend_from(&s);
        assert_eq!((all.len(), all.histogram().count), (8, 12));
        assert_eq!(all.histogram().le_ms, HISTOGRAM_BOUNDS_MS);
    }

    fn timing() -> FrameTiming {
        FrameTiming {
            frame_no: 1,
            capture_ns: 1_000,
            encode_start_ns: 3_000,
            encode_end_ns: 8_000,
            send_ns: 8_500,
            encoded_len: 0,
            slice: Default::default(),
        }
    }

    fn marker(offset: u64) -> FrameMarker {
        FrameMarker {
            eye: Eye::Left,
            seq: 0,
            frame_no: 1,
            pixel_code: Some((Eye::Left, 1)),
            first_byte_ns: offset + 9_000,
            last_byte_ns: offset + 10_000,
            decoded_ns: offset + 14_000,
            presented_ns: None,
            display_ns: Some(offset + 20_000),
        }
    }

    #[test]
    fn stages_partition_the_total_exactly() {
        let offset = 7_777_777;
        let clock = ClockEstimate {
            offset_ns: offset as f64,
            ..ClockEstimate::identity()
        };
        let l = frame_latency(&timing(), &marker(offset), &clock, Some(15_000));
        assert_eq!(l.stages_ns, [2_000, 5_000, 500, 1_500, 4_000]);
        assert_eq!(l.stages_ns.iter().sum::<i64>(), l.total_ns);
        assert_eq!(l.total_ns, 13_000);
        assert_eq!(l.marker_return_ns, Some(1_000));
        assert_eq!(l.glass_to_glass_ns, Some(19_000));
        // No hand-over time: decoded → display is all display.
        assert_eq!(l.display_stages_ns, Some([0, 6_000]));
    }

    #[test]
    fn display_stages_extend_the_partition_to_glass_to_glass() {
        let offset = 123_456;
        let clock = ClockEstimate {
            offset_ns: offset as f64,
            ..ClockEstimate::identity()
        };
        let m = FrameMarker {
            presented_ns: Some(offset + 16_500),
            ..marker(offset)
        };
        let l = frame_latency(&timing(), &m, &clock, None);
        assert_eq!(l.display_stages_ns, Some([2_500, 3_500]));
        let sum: i64 = l
            .stages_ns
            .iter()
            .chain(&l.display_stages_ns.unwrap())
            .sum();
        assert_eq!(Some(sum), l.glass_to_glass_ns);
        // Headless: no display, no display stages.
        let headless = FrameMarker {
            display_ns: None,
            ..marker(offset)
        };
        let l = frame_latency(&timing(), &headless, &clock, None);
        assert_eq!((l.glass_to_glass_ns, l.display_stages_ns), (None, None));
    }

    #[test]
    fn a_wrong_clock_shows_as_a_negative_network_stage_not_a_hidden_one() {
        let clock = ClockEstimate {
            offset_ns: 5_000.0,
            ..ClockEstimate::identity()
        };
        let l = frame_latency(&timing(), &marker(0), &clock, None);
        assert_eq!(l.stages_ns[3], -3_500);
        assert_eq!(l.stages_ns.iter().sum::<i64>(), l.total_ns);
    }

    #[test]
    fn percentiles_are_nearest_rank() {
        let mut s = Series::default();
        for v in 1..=100 {
            s.push(v * 1_000_000);
        }
        let sum = s.summary();
        assert_eq!(
            (sum.p50, sum.p95, sum.p99, sum.max, sum.min),
            (50.0, 95.0, 99.0, 100.0, 1.0)
        );
        assert_eq!(sum.mean, 50.5);
        assert_eq!(Series::default().summary().count, 0);
    }

    #[test]
    fn series_is_bounded() {
        let mut s = Series::with_capacity(3);
        for v in 0..10 {
            s.push(v);
        }
        assert_eq!(s.len(), 3);
        assert_eq!(s.summary().min, 7e-6);
        assert_eq!(s.summary_recent(1).min, 9e-6);
        assert_eq!(s.summary_recent(0).count, 0);
        assert_eq!(s.summary_recent(100).count, 3);
    }

    proptest::proptest! {
        /// Whatever times a marker (from the other side) carries, the arithmetic never
        /// overflows and the stages still partition the total where the times are sane.
        #[test]
        fn any_marker_times_give_figures_never_a_panic(
            times in proptest::collection::vec(proptest::num::u64::ANY, 9),
            offset in proptest::num::i64::ANY,
        ) {
            let timing = FrameTiming {
                frame_no: 1,
                capture_ns: times[0],
                encode_start_ns: times[1],
                encode_end_ns: times[2],
                send_ns: times[3],
                encoded_len: 0,
                slice: Default::default(),
            };
            let marker = FrameMarker {
                eye: crate::Eye::Left,
                seq: 0,
                frame_no: 1,
                pixel_code: None,
                first_byte_ns: times[4],
                last_byte_ns: times[5],
                decoded_ns: times[6],
                presented_ns: Some(times[7]),
                display_ns: Some(times[8]),
            };
            let mut clock = ClockEstimate::identity();
            clock.offset_ns = offset as f64;
            let l = frame_latency(&timing, &marker, &clock, Some(times[8]));
            let _ = (l.total_ns, l.glass_to_glass_ns, l.marker_return_ns);
        }
    }
}
