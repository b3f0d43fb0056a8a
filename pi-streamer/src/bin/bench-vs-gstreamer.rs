//! binoc against GStreamer's low-latency pipeline, side by side on the same pixel-coded frames.
//!
//! binoc: `pi_streamer::loopback` (the synthetic stereo source → x264 → QUIC on 127.0.0.1 →
//! reassembly → openh264), capture→decoded from its markers.
//! GStreamer (Debian's, driven as processes), per eye:
//! `fdsrc ! rawvideoparse ! x264enc tune=zerolatency speed-preset=ultrafast ! rtph264pay !
//! udpsink` → `udpsrc ! rtpjitterbuffer latency=0 ! rtph264depay ! avdec_h264 ! fdsink`. This
//! program writes binoc's own frames (the same test pattern, the same pixel code) into the
//! sender at the frame rate, stamping each frame's capture time as it is handed over, reads the
//! decoded frames back from the receiver, reads each one's pixel code, and takes capture→
//! decoded of that frame. Both systems get the same size, rate, bitrate and one encoder and one
//! decoder thread per eye.
//!
//! Rounds alternate (binoc first, then GStreamer first), because absolute figures move ±20 %
//! between runs on a shared machine; the table is the median of the rounds and the ratio
//! binoc / GStreamer. A benchmark, not a test: it asserts nothing.
//!
//! Each round also runs a control, `x264 alone`: the same frames through one x264 per eye (the
//! same settings), paced at the frame rate, with nothing else around them, timing each
//! picture's encode (wall and CPU). Its spread is the machine's for the stage that costs most,
//! measured in the same minutes as the systems: on a VM whose cache and memory other tenants
//! share, no pipeline's p99/p50 can be much below it (docs/performance.md). Every run also
//! reports the steal time of the machine's CPUs (/proc/stat): on a VM, the share of the run
//! the hypervisor gave to other guests.
//!
//! `cargo run --release -p pi-streamer --bin bench-vs-gstreamer -- --size 1280x720 --fps 60`
//! (or `scripts/bench-vs-gstreamer.sh`, which installs GStreamer first).

use std::io::{Read, Write};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use binoc_net::os_clock::{machine_cpu, monotonic_ns, thread_cpu_ns};
use clap::Parser;
use headset_core::decode::SoftwareDecoder;
use pi_streamer::config::{EncoderKind, RefreshMode, Size, StreamerConfig};
use pi_streamer::source::test_pattern::TestPattern;
use pi_streamer::source::{EyeSource, EyeTransform};
use shared_proto::latency::Series;
use shared_proto::{pixel_code, Eye};

/// binoc vs GStreamer (x264 zerolatency ultrafast, RTP, avdec_h264) on the same frames:
/// capture→decoded per frame, frames lost, CPU per frame, in alternated rounds.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// Frame size for both eyes, WIDTHxHEIGHT.
    #[arg(long, default_value = "1280x720")]
    size: Size,
    #[arg(long, default_value_t = 60.0)]
    fps: f64,
    /// Bitrate per eye, Mbit/s.
    #[arg(long, default_value_t = 8.0)]
    bitrate_mbps: f64,
    /// Seconds per run.
    #[arg(long, default_value_t = 10.0)]
    seconds: f64,
    /// Rounds; each runs both systems, in alternating order.
    #[arg(long, default_value_t = 3)]
    rounds: u32,
    /// One eye only (the left) instead of both.
    #[arg(long)]
    one_eye: bool,
    /// Write each run's figures as JSON lines here.
    #[arg(long)]
    json: Option<std::path::PathBuf>,
    /// binoc's slices per frame; several (`1,4`) run one binoc per count in every round,
    /// alternated with GStreamer, so whole frames and slices are compared in one run.
    #[arg(long, value_delimiter = ',', default_value = "1,4")]
    slices: Vec<u8>,
    /// binoc's refresh: intra (periodic intra refresh) or keyframe; several (`intra,keyframe`)
    /// run one binoc per mode.
    #[arg(long, value_delimiter = ',', default_value = "intra")]
    refresh: Vec<String>,
    /// binoc's decoder: libavcodec (FFmpeg's, as GStreamer's avdec_h264; the default in builds
    /// with the `libavcodec` feature, on by default) or openh264; several
    /// (`libavcodec,openh264`) run one binoc per decoder.
    #[arg(long, value_delimiter = ',', value_parser = SoftwareDecoder::NAMES)]
    decoder: Vec<String>,
    /// Write every decoded frame's capture→decoded latency of each run into this directory:
    /// `samples.csv` (system,round,index,latency_ms), and binoc's per-stage timeline of each
    /// run (`timeline-<system>-r<round>.csv`, as `--timeline` writes it); scripts/plot-bench.sh
    /// plots them. The control's encode times: `control.csv` (system,round,index,encode_ms).
    #[arg(long)]
    out: Option<std::path::PathBuf>,
    /// Leave out the per-round control (`x264 alone`: the encoders without a pipeline).
    #[arg(long)]
    no_control: bool,
}

/// One system's run.
#[derive(Debug, Clone, serde::Serialize)]
struct Run {
    system: String,
    round: u32,
    width: u32,
    height: u32,
    fps: f64,
    eyes: usize,
    p50: f64,
    p95: f64,
    p99: f64,
    max: f64,
    /// Frames decoded and sent, all eyes.
    decoded: u64,
    sent: u64,
    wrong_eye: u64,
    /// CPU time per frame (per eye-frame), ms: every process and thread of the system,
    /// the source's frame generation included. The control: its encoders' alone.
    cpu_ms_per_frame: f64,
    /// The control only: p99/p50 of its encoders' CPU time per picture (the wall-time
    /// figures above include waiting for a core; this does not).
    #[serde(skip_serializing_if = "Option::is_none")]
    cpu_p99_over_p50: Option<f64>,
    /// Of the time the machine's CPUs were busy or taken during the run, the share the
    /// hypervisor gave to other guests (`steal` in /proc/stat; 0 on bare metal). A run with
    /// steal measures the host's load as much as the system.
    steal_percent: Option<f64>,
}

/// The control's name in the table.
const CONTROL: &str = "x264 alone";

fn main() -> Result<()> {
    let args = Args::parse();
    binoc_net::logging::init();
    for tool in ["gst-launch-1.0"] {
        if Command::new(tool).arg("--version").output().is_err() {
            bail!("{tool} not found: run scripts/bench-vs-gstreamer.sh (it installs GStreamer)");
        }
    }
    let frames = (args.seconds * args.fps).round() as u64;
    let mut runs = Vec::new();
    let variants = binoc_variants(&args)?;
    if let Some(dir) = &args.out {
        std::fs::create_dir_all(dir)?;
        std::fs::write(dir.join("samples.csv"), "system,round,index,latency_ms\n")?;
        if !args.no_control {
            std::fs::write(dir.join("control.csv"), "system,round,index,encode_ms\n")?;
        }
    }
    for round in 0..args.rounds {
        // GStreamer first in odd rounds, last in even ones; binoc's variants rotate too.
        let mut order: Vec<Job> = variants.iter().map(Job::Binoc).collect();
        let n = order.len();
        order.rotate_left(round as usize % n);
        if round % 2 == 0 {
            order.push(Job::Gstreamer);
        } else {
            order.insert(0, Job::Gstreamer);
        }
        if !args.no_control {
            // Between the systems, so that it samples the same minutes as they do.
            order.insert(order.len() / 2, Job::Control);
        }
        for job in order {
            let before = machine_cpu();
            let (mut r, samples) = match job {
                Job::Binoc(v) => binoc(&args, v, frames, round)?,
                Job::Gstreamer => gstreamer(&args, frames, round)?,
                Job::Control => control(&args, frames, round)?,
            };
            r.steal_percent = before.and_then(|m| m.steal_percent_to_now());
            let system = &r.system;
            if let Some(dir) = &args.out {
                // The control's samples are encode times, not capture→decoded: a file of their own.
                let file = match job {
                    Job::Control => "control.csv",
                    _ => "samples.csv",
                };
                let mut f = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(dir.join(file))?;
                for (i, ms) in samples.iter().enumerate() {
                    writeln!(f, "{system},{round},{i},{ms:.3}")?;
                }
            }
            eprintln!(
                "round {round} {system:<9}: p50 {:.2} p95 {:.2} p99 {:.2} max {:.2} ms, {}/{} decoded, {} wrong eye, CPU {:.2} ms/frame, steal {}",
                r.p50, r.p95, r.p99, r.max, r.decoded, r.sent, r.wrong_eye, r.cpu_ms_per_frame,
                r.steal_percent.map_or("unknown".into(), |p| format!("{p:.1} %"))
            );
            if let Some(path) = &args.json {
                let mut f = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)?;
                writeln!(f, "{}", serde_json::to_string(&r)?)?;
            }
            runs.push(r);
        }
    }
    let mut systems: Vec<String> = variants.iter().map(|v| v.name.clone()).collect();
    systems.push("gstreamer".into());
    print_table(&args, &systems, &runs);
    if !args.no_control {
        print_control(&runs);
    }
    Ok(())
}

/// One run of a round.
#[derive(Clone, Copy)]
enum Job<'a> {
    Binoc(&'a Variant),
    Gstreamer,
    /// `x264 alone` ([`control`]).
    Control,
}

/// Sleeps until `due` on the monotonic clock (at once if it has passed): the frame pacing of
/// the GStreamer feed and of the control.
fn sleep_until(due: u64) {
    let now = monotonic_ns();
    if due > now {
        std::thread::sleep(Duration::from_nanos(due - now));
    }
}

/// One binoc configuration of the bench.
struct Variant {
    name: String,
    slices: u8,
    refresh: RefreshMode,
    decoder: SoftwareDecoder,
}

fn binoc_variants(args: &Args) -> Result<Vec<Variant>> {
    let mut v = Vec::new();
    for r in &args.refresh {
        let refresh = match r.as_str() {
            "intra" => RefreshMode::Intra,
            "keyframe" => RefreshMode::Keyframe,
            other => bail!("--refresh {other}: expected intra or keyframe"),
        };
        for &slices in &args.slices {
            if !(1..=32).contains(&slices) {
                bail!("--slices {slices}: expected 1 to 32");
            }
            let default = [SoftwareDecoder::default().name().to_string()];
            let decoders = if args.decoder.is_empty() {
                &default[..]
            } else {
                &args.decoder[..]
            };
            for d in decoders {
                let decoder: SoftwareDecoder = d.parse().context("--decoder")?;
                decoder.check_available().context("--decoder")?;
                let mut name = format!("binoc s{slices}");
                if args.refresh.len() > 1 {
                    name.push_str(if refresh == RefreshMode::Intra {
                        " ir"
                    } else {
                        " key"
                    });
                }
                if args.decoder.len() > 1 {
                    name.push_str(match decoder {
                        SoftwareDecoder::Libavcodec => " libav",
                        SoftwareDecoder::Openh264 => " oh264",
                    });
                }
                v.push(Variant {
                    name,
                    slices,
                    refresh,
                    decoder,
                });
            }
        }
    }
    Ok(v)
}

fn eyes(args: &Args) -> Vec<Eye> {
    if args.one_eye {
        vec![Eye::Left]
    } else {
        Eye::BOTH.to_vec()
    }
}

/// binoc's loopback with the fastest encoder, at the bench's size, rate and bitrate.
fn binoc(args: &Args, v: &Variant, frames: u64, round: u32) -> Result<(Run, Vec<f64>)> {
    let mut cfg = StreamerConfig::embedded();
    for eye in Eye::BOTH {
        let e = cfg.eyes.get_mut(eye);
        e.size = args.size;
        e.fps = args.fps;
        e.bitrate_mbps = args.bitrate_mbps;
    }
    cfg.encoder.kind = EncoderKind::X264;
    cfg.encoder.threads = 1;
    cfg.encoder.slices = v.slices;
    if args.one_eye {
        cfg.only_eye = Some(Eye::Left);
    }
    cfg.encoder.refresh = v.refresh;
    if args.fps > 0.0 && v.refresh == RefreshMode::Keyframe {
        // x264enc's default: an IDR every 250 frames.
        for eye in Eye::BOTH {
            cfg.eyes.get_mut(eye).idr_interval_frames = 250;
        }
    }
    cfg.validate("bench")?;
    let rt = binoc_net::sched::runtime_builder().build()?;
    let timeline = args.out.as_ref().map(|d| {
        d.join(format!(
            "timeline-{}-r{round}.csv",
            v.name.replace(' ', "-")
        ))
    });
    let r = rt
        .block_on(pi_streamer::loopback::run_with_timeline(
            &cfg,
            frames,
            timeline.as_deref(),
            v.decoder,
        ))?
        .report;
    let samples = match &timeline {
        Some(t) => read_timeline(t)?,
        None => Vec::new(),
    };
    let (l, rr) = (&r.eyes.left, &r.eyes.right);
    Ok((
        Run {
            system: v.name.clone(),
            round,
            width: args.size.width,
            height: args.size.height,
            fps: args.fps,
            eyes: eyes(args).len(),
            p50: r.latency_ms.p50,
            p95: r.latency_ms.p95,
            p99: r.latency_ms.p99,
            max: r.latency_ms.max,
            decoded: l.decoded + rr.decoded,
            sent: l.captured + rr.captured,
            wrong_eye: l.wrong_eye + rr.wrong_eye,
            cpu_ms_per_frame: r.cpu_ms_per_frame,
            cpu_p99_over_p50: None,
            steal_percent: None,
        },
        samples,
    ))
}

/// capture→decoded (ms) of every frame in a `--timeline` CSV, in its order.
fn read_timeline(path: &std::path::Path) -> Result<Vec<f64>> {
    let text = std::fs::read_to_string(path)?;
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap_or_default().split(',').collect();
    let col = header
        .iter()
        .position(|h| *h == "capture_to_decoded_ms")
        .context("timeline without capture_to_decoded_ms")?;
    Ok(lines
        .filter_map(|l| l.split(',').nth(col)?.parse().ok())
        .collect())
}

/// CPU time (user + system) of a child process so far, ns.
fn child_cpu_ns(pid: u32) -> u64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0;
    };
    // Fields after the command name (which may hold spaces) in parentheses.
    let Some(rest) = stat.rfind(')').map(|i| &stat[i + 2..]) else {
        return 0;
    };
    let f: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line: 12 and 13 after the name.
    let ticks: u64 = [11, 12]
        .iter()
        .filter_map(|&i| f.get(i).and_then(|v| v.parse::<u64>().ok()))
        .sum();
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    ticks * 1_000_000_000 / hz
}

/// Makes a pipe hold a whole frame (best effort: F_SETPIPE_SZ), so a frame crosses it in one
/// write and one read instead of 64 KiB at a time, each a context switch on a loaded machine.
fn widen_pipe(fd: std::os::fd::RawFd, bytes: usize) {
    // SAFETY: fcntl on a pipe descriptor this process owns; failure leaves it as it was.
    unsafe {
        libc::fcntl(
            fd,
            libc::F_SETPIPE_SZ,
            bytes.next_power_of_two() as libc::c_int,
        );
    }
}

struct Killed(Child);
impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn gst(pipeline: &str, stdin: Stdio, stdout: Stdio) -> Result<Killed> {
    let child = Command::new("gst-launch-1.0")
        .arg("-q")
        .args(pipeline.split_whitespace())
        .stdin(stdin)
        .stdout(stdout)
        .stderr(Stdio::inherit())
        .spawn()
        .context("starting gst-launch-1.0")?;
    Ok(Killed(child))
}

/// GStreamer's pipeline, one sender and one receiver process per eye.
fn gstreamer(args: &Args, frames: u64, round: u32) -> Result<(Run, Vec<f64>)> {
    let (w, h) = (args.size.width as usize, args.size.height as usize);
    let frame_bytes = w * h * 3 / 2;
    let fps_n = (args.fps * 1000.0).round() as u64;
    let kbps = (args.bitrate_mbps * 1000.0).round() as u64;
    let eyes = eyes(args);
    // Capture times by eye and frame number; latencies and counts from the readers.
    let captures: Arc<Mutex<Vec<Vec<u64>>>> =
        Arc::new(Mutex::new(vec![vec![0; frames as usize]; 2]));
    let mut procs = Vec::new();
    let mut readers = Vec::new();
    let mut writers = Vec::new();
    let t0 = monotonic_ns() + 1_500_000_000; // after the pipelines are up
    for &eye in &eyes {
        let port = free_udp_port()?;
        let mut rx = gst(
            &format!(
                "udpsrc port={port} buffer-size=4194304 caps=application/x-rtp,media=video,encoding-name=H264,clock-rate=90000,payload=96 \
                 ! rtpjitterbuffer latency=0 ! rtph264depay ! avdec_h264 max-threads=1 \
                 ! video/x-raw,format=I420 ! fdsink fd=1 sync=false"
            ),
            Stdio::null(),
            Stdio::piped(),
        )?;
        let mut out = rx.0.stdout.take().context("receiver stdout")?;
        widen_pipe(std::os::fd::AsRawFd::as_raw_fd(&out), frame_bytes * 2);
        let mut tx = gst(
            &format!(
                "fdsrc fd=0 blocksize={frame_bytes} ! rawvideoparse use-sink-caps=false width={w} height={h} format=i420 framerate={fps_n}/1000 \
                 ! x264enc tune=zerolatency speed-preset=ultrafast bitrate={kbps} threads=1 \
                 ! rtph264pay config-interval=-1 mtu=1400 ! udpsink host=127.0.0.1 port={port} sync=false async=false"
            ),
            Stdio::piped(),
            Stdio::null(),
        )?;
        let mut stdin = tx.0.stdin.take().context("sender stdin")?;
        widen_pipe(std::os::fd::AsRawFd::as_raw_fd(&stdin), frame_bytes * 2);
        procs.push(rx);
        procs.push(tx);
        // The reader: every decoded frame, its code, its latency.
        let caps = captures.clone();
        readers.push(std::thread::spawn(move || {
            let mut buf = vec![0u8; frame_bytes];
            let (mut lat, mut decoded, mut wrong) = (Series::default(), 0u64, 0u64);
            while out.read_exact(&mut buf).is_ok() {
                let now = monotonic_ns();
                let Some((code_eye, n)) = pixel_code::read(&buf[..w * h], w, w, h) else {
                    continue;
                };
                decoded += 1;
                if code_eye != eye {
                    wrong += 1;
                }
                let cap = caps.lock().unwrap()[eye.index()]
                    .get(n as usize)
                    .copied()
                    .unwrap_or(0);
                if cap > 0 && now > cap {
                    lat.push((now - cap) as i64);
                }
            }
            (lat, decoded, wrong)
        }));
        // The writer: binoc's own source frames, paced, stamped as they are handed over.
        let caps = captures.clone();
        let size = args.size;
        let fps = args.fps;
        writers.push(std::thread::spawn(move || -> Result<u64> {
            let mut cfg = StreamerConfig::embedded();
            let e = cfg.eyes.get_mut(eye);
            e.size = size;
            let transform = EyeTransform::from_config(eye, e);
            let mut pattern = TestPattern::new(eye, w, h);
            let cpu0 = thread_cpu_ns();
            for n in 0..frames {
                sleep_until(t0 + (n as f64 * 1e9 / fps) as u64);
                let Some(mut f) = pattern.next_frame(n)? else {
                    break;
                };
                f.frame_no = n;
                let f = transform.apply(f)?;
                caps.lock().unwrap()[eye.index()][n as usize] = monotonic_ns();
                stdin
                    .write_all(&f.data)
                    .context("writing to the GStreamer sender")?;
            }
            drop(stdin);
            Ok(thread_cpu_ns() - cpu0)
        }));
    }
    let mut source_cpu = 0;
    for wr in writers {
        source_cpu += wr
            .join()
            .map_err(|_| anyhow::anyhow!("writer panicked"))??;
    }
    // The last frames' way through, then the CPU of every process, then stop them.
    std::thread::sleep(Duration::from_millis(1000));
    let gst_cpu: u64 = procs.iter().map(|p| child_cpu_ns(p.0.id())).sum();
    drop(procs);
    let mut lat = Series::default();
    let (mut decoded, mut wrong) = (0, 0);
    let mut samples = Vec::new();
    for r in readers {
        let (l, d, we) = r.join().map_err(|_| anyhow::anyhow!("reader panicked"))?;
        lat.extend_from(&l);
        samples.extend(l.iter().map(|ns| ns as f64 / 1e6));
        decoded += d;
        wrong += we;
    }
    let s = lat.summary();
    let sent = frames * eyes.len() as u64;
    Ok((
        Run {
            system: "gstreamer".into(),
            round,
            width: args.size.width,
            height: args.size.height,
            fps: args.fps,
            eyes: eyes.len(),
            p50: s.p50,
            p95: s.p95,
            p99: s.p99,
            max: s.max,
            decoded,
            sent,
            wrong_eye: wrong,
            cpu_ms_per_frame: (gst_cpu + source_cpu) as f64 / 1e6 / sent.max(1) as f64,
            cpu_p99_over_p50: None,
            steal_percent: None,
        },
        samples,
    ))
}

/// The control: one x264 per eye on its own thread, binoc's default settings with whole
/// pictures (one slice, intra refresh), the same frames, paced at the frame rate; each
/// picture's encode timed (wall and thread CPU), the first (an IDR) left out. The frames are
/// drawn and transformed before the clock starts, so only the encoder is timed.
fn control(args: &Args, frames: u64, round: u32) -> Result<(Run, Vec<f64>)> {
    let mut cfg = StreamerConfig::embedded();
    cfg.encoder.kind = EncoderKind::X264;
    cfg.encoder.threads = 1;
    cfg.encoder.slices = 1;
    let t0 = monotonic_ns() + 200_000_000;
    let mut threads = Vec::new();
    for eye in eyes(args) {
        let mut e = cfg.eyes.get(eye).clone();
        e.size = args.size;
        e.fps = args.fps;
        e.bitrate_mbps = args.bitrate_mbps;
        let settings = cfg.encoder.clone();
        let (w, h, fps) = (
            args.size.width as usize,
            args.size.height as usize,
            args.fps,
        );
        threads.push(std::thread::spawn(
            move || -> Result<(Vec<u64>, Vec<u64>)> {
                let mut enc = pi_streamer::encode::open(&settings, &e)?;
                let transform = EyeTransform::from_config(eye, &e);
                let mut pattern = TestPattern::new(eye, w, h);
                let (mut wall, mut cpu) = (Vec::new(), Vec::new());
                for n in 0..frames {
                    let Some(mut f) = pattern.next_frame(n)? else {
                        break;
                    };
                    f.frame_no = n;
                    let f = transform.apply(f)?;
                    sleep_until(t0 + (n as f64 * 1e9 / fps) as u64);
                    let (w0, c0) = (monotonic_ns(), thread_cpu_ns());
                    enc.encode(&f, n == 0)?;
                    // The first picture (the encoder's first, an IDR) is not the steady state.
                    if n > 0 {
                        wall.push(monotonic_ns() - w0);
                        cpu.push(thread_cpu_ns() - c0);
                    }
                }
                Ok((wall, cpu))
            },
        ));
    }
    let (mut wall, mut cpu) = (Series::default(), Series::default());
    for t in threads {
        let (w, c) = t
            .join()
            .map_err(|_| anyhow::anyhow!("control encoder panicked"))??;
        for ns in w {
            wall.push(ns as i64);
        }
        for ns in c {
            cpu.push(ns as i64);
        }
    }
    let (s, c) = (wall.summary(), cpu.summary());
    let samples: Vec<f64> = wall.iter().map(|ns| ns as f64 / 1e6).collect();
    let n = samples.len() as u64;
    let cpu_ratio = (c.p50 > 0.0).then(|| c.p99 / c.p50);
    Ok((
        Run {
            system: CONTROL.into(),
            round,
            width: args.size.width,
            height: args.size.height,
            fps: args.fps,
            eyes: eyes(args).len(),
            p50: s.p50,
            p95: s.p95,
            p99: s.p99,
            max: s.max,
            decoded: n,
            sent: n,
            wrong_eye: 0,
            cpu_ms_per_frame: c.mean,
            cpu_p99_over_p50: cpu_ratio,
            steal_percent: None,
        },
        samples,
    ))
}

/// The control's lines under the table: the machine's own spread in this run.
fn print_control(runs: &[Run]) {
    let c: Vec<&Run> = runs.iter().filter(|r| r.system == CONTROL).collect();
    if c.is_empty() {
        return;
    }
    let m = |f: fn(&Run) -> f64| median(c.iter().map(|r| f(r)).collect());
    println!(
        "control ({CONTROL}: each picture's encode, no pipeline): p50 {:.2} p95 {:.2} p99 {:.2} max {:.2} ms, \
         p99/p50 {:.2} (wall) {:.2} (CPU); per round: {}",
        m(|r| r.p50),
        m(|r| r.p95),
        m(|r| r.p99),
        m(|r| r.max),
        m(|r| r.p99) / m(|r| r.p50).max(1e-9),
        m(|r| r.cpu_p99_over_p50.unwrap_or(0.0)),
        c.iter()
            .map(|r| format!("{:.2}", r.p99 / r.p50.max(1e-9)))
            .collect::<Vec<_>>()
            .join(", ")
    );
}

fn free_udp_port() -> Result<u16> {
    Ok(std::net::UdpSocket::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    if v.is_empty() {
        return 0.0;
    }
    v[v.len() / 2]
}

/// A column of the table: its name and how a run gives it.
type Column = (&'static str, fn(&Run) -> f64);

fn print_table(args: &Args, systems: &[String], runs: &[Run]) {
    let pick = |system: &str, f: fn(&Run) -> f64| {
        median(runs.iter().filter(|r| r.system == system).map(f).collect())
    };
    println!(
        "\n{}x{} at {} fps, {} Mbit/s per eye, {} eye(s), {} s per run, {} rounds (medians of the rounds)",
        args.size.width,
        args.size.height,
        args.fps,
        args.bitrate_mbps,
        if args.one_eye { 1 } else { 2 },
        args.seconds,
        args.rounds
    );
    if args.decoder.len() <= 1 {
        let decoder = args
            .decoder
            .first()
            .cloned()
            .unwrap_or_else(|| SoftwareDecoder::default().name().to_string());
        println!("binoc decodes with {decoder}");
    }
    println!(
        "                 p50 ms   p95 ms   p99 ms   max ms   decoded %   CPU ms/frame   steal %"
    );
    let cols: [Column; 7] = [
        ("p50", |r| r.p50),
        ("p95", |r| r.p95),
        ("p99", |r| r.p99),
        ("max", |r| r.max),
        ("decoded", |r| {
            100.0 * r.decoded as f64 / r.sent.max(1) as f64
        }),
        ("cpu", |r| r.cpu_ms_per_frame),
        ("steal", |r| r.steal_percent.unwrap_or(f64::NAN)),
    ];
    for system in systems {
        let v: Vec<f64> = cols.iter().map(|(_, f)| pick(system, *f)).collect();
        let steal = if v[6].is_nan() {
            "-".to_string()
        } else {
            format!("{:.1}", v[6])
        };
        println!(
            "{system:<14} {:>8.2} {:>8.2} {:>8.2} {:>8.2} {:>10.1} {:>14.2} {steal:>9}",
            v[0], v[1], v[2], v[3], v[4], v[5]
        );
    }
    for system in systems.iter().filter(|s| *s != "gstreamer") {
        let ratio: Vec<f64> = cols
            .iter()
            .map(|(_, f)| pick(system, *f) / pick("gstreamer", *f).max(1e-9))
            .collect();
        println!(
            "{:<14} {:>8.2} {:>8.2} {:>8.2} {:>8.2} {:>10.2} {:>14.2}",
            format!("{system}/gst"),
            ratio[0],
            ratio[1],
            ratio[2],
            ratio[3],
            ratio[4],
            ratio[5]
        );
        println!(
            "{:<14} p99/p50 {:.2}",
            system,
            pick(system, |r| r.p99) / pick(system, |r| r.p50).max(1e-9)
        );
    }
    let wrong: u64 = runs.iter().map(|r| r.wrong_eye).sum();
    println!("wrong-eye frames over all runs: {wrong}");
    let steal: Vec<f64> = runs.iter().filter_map(|r| r.steal_percent).collect();
    if let Some(worst) = steal.iter().copied().reduce(f64::max) {
        println!(
            "steal (CPU time the hypervisor gave to other guests): median {:.1} %, worst run {worst:.1} %{}",
            median(steal.clone()),
            if worst > 2.0 {
                " — the host was loaded: its figures measure the host as much as the systems"
            } else {
                ""
            }
        );
    }
}
