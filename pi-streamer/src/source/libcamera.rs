//! Raspberry Pi CSI cameras (IMX708 and friends) through libcamera (cargo feature
//! `libcamera`; needs libcamera >= 0.4, which Raspberry Pi OS ships).
//!
//! libcamera allows one `CameraManager` per process, so one thread owns it and both cameras,
//! and hands each eye's frames to that eye's [`CameraDevice`] through a small channel. The
//! ISP scales to the eye's `size` and delivers YUV420; the capture time is the request's
//! `SensorTimestamp` (start of exposure of the first row, CLOCK_BOOTTIME), moved onto the
//! streamer's CLOCK_MONOTONIC. Pairing, conversion and crop/flip are the shared, tested code.

use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use crossbeam_channel::{Receiver, Sender};
use libcamera::camera::CameraConfigurationStatus;
use libcamera::camera_manager::CameraManager;
use libcamera::control::ControlList;
use libcamera::controls;
use libcamera::framebuffer_allocator::{FrameBuffer, FrameBufferAllocator};
use libcamera::framebuffer_map::MemoryMappedFrameBuffer;
use libcamera::geometry::Size as LcSize;
use libcamera::pixel_format::PixelFormat;
use libcamera::request::{Request, ReuseFlag};
use libcamera::stream::StreamRole;
use shared_proto::Eye;

use super::camera::{CameraDevice, CapturedFrame};
use super::convert;
use crate::config::{AwbMode, EyeConfig};

const YUV420: PixelFormat = PixelFormat::new(u32::from_le_bytes(*b"YU12"), 0);

/// CLOCK_BOOTTIME − CLOCK_MONOTONIC now (the time spent suspended; 0 on a Pi that never
/// sleeps, but measured rather than assumed).
fn boottime_offset_ns() -> i64 {
    let read = |id| {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: a valid timespec out-pointer.
        unsafe { libc::clock_gettime(id, &mut ts) };
        // time_t and c_long are i64 on the Pi's aarch64 but i32 on 32-bit Pi OS.
        #[allow(clippy::useless_conversion)]
        let ns = i64::from(ts.tv_sec) * 1_000_000_000 + i64::from(ts.tv_nsec);
        ns
    };
    read(libc::CLOCK_BOOTTIME) - read(libc::CLOCK_MONOTONIC)
}

/// One eye's end of the libcamera thread.
pub struct LibcameraEye {
    eye: Eye,
    name: String,
    rx: Receiver<Result<CapturedFrame, String>>,
    timeout: Duration,
}

impl CameraDevice for LibcameraEye {
    fn capture(&mut self) -> Result<Option<CapturedFrame>> {
        match self.rx.recv_timeout(self.timeout) {
            Ok(Ok(f)) => Ok(Some(f)),
            Ok(Err(e)) => Err(anyhow!("{}: {e}", self.name)),
            Err(crossbeam_channel::RecvTimeoutError::Timeout) => bail!(
                "{} ({} eye): no frame for {:.1} s",
                self.name,
                self.eye,
                self.timeout.as_secs_f64()
            ),
            Err(crossbeam_channel::RecvTimeoutError::Disconnected) => Ok(None),
        }
    }
    fn describe(&self) -> String {
        self.name.clone()
    }
}

/// Opens both cameras; `ids[i]` is a camera index (`0`, `1`) or a libcamera camera id.
pub fn open_pair(cfgs: [&EyeConfig; 2], ids: [String; 2]) -> Result<[Box<dyn CameraDevice>; 2]> {
    let (ready_tx, ready_rx) = crossbeam_channel::bounded::<Result<[String; 2], String>>(1);
    let (ltx, lrx) = crossbeam_channel::bounded(2);
    let (rtx, rrx) = crossbeam_channel::bounded(2);
    let cfgs = [cfgs[0].clone(), cfgs[1].clone()];
    let fps = cfgs[0].fps;
    std::thread::Builder::new()
        .name("libcamera".into())
        .spawn(move || {
            // No short time slice here (unlike the camera-<eye> threads that take the frames):
            // libcamera starts its own threads from this one (its event loop, the IPA), and a
            // thread inherits its creator's slice (binoc_net::sched).
            if let Err(e) = run(&cfgs, &ids, [ltx, rtx], &ready_tx) {
                let _ = ready_tx.try_send(Err(format!("{e:#}")));
            }
        })?;
    let names = ready_rx
        .recv_timeout(Duration::from_secs(10))
        .map_err(|_| anyhow!("libcamera did not start within 10 s"))?
        .map_err(|e| anyhow!("libcamera: {e}"))?;
    let timeout = Duration::from_secs(2).max(Duration::from_secs_f64(10.0 / fps));
    let [ln, rn] = names;
    Ok([
        Box::new(LibcameraEye {
            eye: Eye::Left,
            name: ln,
            rx: lrx,
            timeout,
        }),
        Box::new(LibcameraEye {
            eye: Eye::Right,
            name: rn,
            rx: rrx,
            timeout,
        }),
    ])
}

fn start_controls(c: &EyeConfig) -> libcamera::utils::UniquePtr<ControlList> {
    let mut list = ControlList::new();
    let frame_us = (1e6 / c.fps) as i64;
    let _ = list.set(controls::FrameDurationLimits([frame_us, frame_us]));
    if let Some(us) = c.camera.exposure_us {
        let _ = list.set(controls::AeEnable(false));
        let _ = list.set(controls::ExposureTime(us as i32));
    }
    if let Some(g) = c.camera.analogue_gain {
        let _ = list.set(controls::AnalogueGain(g as f32));
    }
    let mode = match c.camera.awb {
        AwbMode::Auto => Some(controls::AwbMode::AwbAuto),
        AwbMode::Incandescent => Some(controls::AwbMode::AwbIncandescent),
        AwbMode::Tungsten => Some(controls::AwbMode::AwbTungsten),
        AwbMode::Fluorescent => Some(controls::AwbMode::AwbFluorescent),
        AwbMode::Indoor => Some(controls::AwbMode::AwbIndoor),
        AwbMode::Daylight => Some(controls::AwbMode::AwbDaylight),
        AwbMode::Cloudy => Some(controls::AwbMode::AwbCloudy),
        AwbMode::Off => None,
    };
    match (mode, c.camera.colour_gains) {
        (Some(m), _) => {
            let _ = list.set(m);
        }
        (None, Some([r, b])) => {
            let _ = list.set(controls::AwbEnable(false));
            let _ = list.set(controls::ColourGains([r as f32, b as f32]));
        }
        (None, None) => {}
    }
    list
}

fn run(
    cfgs: &[EyeConfig; 2],
    ids: &[String; 2],
    out: [Sender<Result<CapturedFrame, String>>; 2],
    ready: &Sender<Result<[String; 2], String>>,
) -> Result<()> {
    let mgr = CameraManager::new().context("starting the libcamera camera manager")?;
    let list = mgr.cameras();
    let find = |id: &str| {
        id.parse::<usize>()
            .ok()
            .and_then(|i| list.get(i))
            .or_else(|| mgr.get(id))
            .ok_or_else(|| anyhow!("no camera `{id}` ({} cameras found)", list.len()))
    };
    let cams = [find(&ids[0])?, find(&ids[1])?];
    let mut active = Vec::new();
    let mut streams = Vec::new();
    let mut requests = Vec::new();
    let mut names = Vec::new();
    let (done_tx, done_rx) = crossbeam_channel::unbounded::<(usize, Request)>();
    for (i, cam) in cams.iter().enumerate() {
        let c = &cfgs[i];
        let name = format!("libcamera {} ({})", ids[i], cam.id());
        let mut cam = cam
            .acquire()
            .with_context(|| format!("{name}: cannot acquire (in use by another process?)"))?;
        let mut cc = cam
            .generate_configuration(&[StreamRole::VideoRecording])
            .with_context(|| format!("{name}: no video configuration"))?;
        if let Some(mode) = c.camera.sensor_mode {
            let mut sc = libcamera::camera::SensorConfiguration::new();
            sc.set_bit_depth(10);
            sc.set_output_size(mode.width, mode.height);
            cc.set_sensor_configuration(sc);
        }
        {
            let mut s = cc.get_mut(0).context("no stream configuration")?;
            s.set_pixel_format(YUV420);
            s.set_size(LcSize {
                width: c.size.width,
                height: c.size.height,
            });
            s.set_buffer_count(c.camera.buffers);
        }
        match cc.validate() {
            CameraConfigurationStatus::Invalid => bail!("{name}: configuration refused"),
            CameraConfigurationStatus::Adjusted => {
                tracing::warn!("{name}: configuration adjusted by libcamera")
            }
            CameraConfigurationStatus::Valid => {}
        }
        cam.configure(&mut cc)
            .with_context(|| format!("{name}: configure"))?;
        let s = cc.get(0).context("no stream configuration")?;
        let (size, stride) = (s.get_size(), s.get_stride() as usize);
        if s.get_pixel_format() != YUV420 {
            bail!("{name}: YUV420 output not available");
        }
        let stream = s.stream().context("no stream")?;
        let mut alloc = FrameBufferAllocator::new(&cam);
        let bufs = alloc.alloc(&stream).context("allocating frame buffers")?;
        for (k, b) in bufs.into_iter().enumerate() {
            let b = MemoryMappedFrameBuffer::new(b).map_err(|e| anyhow!("mmap: {e:?}"))?;
            let mut req = cam
                .create_request(Some(k as u64))
                .context("create_request")?;
            req.add_buffer(&stream, b).context("add_buffer")?;
            requests.push((i, req));
        }
        let tx = done_tx.clone();
        cam.on_request_completed(move |req| {
            let _ = tx.send((i, req));
        });
        cam.start(Some(&start_controls(c)))
            .with_context(|| format!("{name}: start"))?;
        tracing::info!(
            "{name}: {}x{} YUV420 stride {stride}, sensor mode {:?}",
            size.width,
            size.height,
            c.camera.sensor_mode.map(|m| m.to_string())
        );
        names.push(name);
        streams.push((stream, size, stride));
        active.push(cam);
    }
    for (i, req) in requests.drain(..) {
        active[i]
            .queue_request(req)
            .map_err(|(_, e)| anyhow!("queue_request: {e}"))?;
    }
    let _ = ready.send(Ok([names[0].clone(), names[1].clone()]));
    let boot_offset = boottime_offset_ns();
    loop {
        let Ok((i, mut req)) = done_rx.recv_timeout(Duration::from_secs(5)) else {
            let _ = out[0].try_send(Err("no frame from libcamera for 5 s".into()));
            let _ = out[1].try_send(Err("no frame from libcamera for 5 s".into()));
            return Ok(());
        };
        let eye = Eye::BOTH[i];
        let (stream, size, stride) = &streams[i];
        let now = binoc_net::os_clock::monotonic_ns();
        let ts = req
            .metadata()
            .get::<controls::SensorTimestamp>()
            .ok()
            .map(|t| (t.0 - boot_offset).max(0) as u64)
            .filter(|&t| t > 0 && t <= now)
            .unwrap_or(now);
        let frame = {
            let fb: &MemoryMappedFrameBuffer<FrameBuffer> =
                req.buffer(stream).context("request without our buffer")?;
            let planes = fb.data();
            let (w, h) = (size.width as usize, size.height as usize);
            match planes.as_slice() {
                // Planes are views into one mapping when the buffer is one dmabuf.
                [y, u, v] if !y.is_empty() => {
                    let mut data = Vec::with_capacity(y.len() + u.len() + v.len());
                    data.extend_from_slice(y);
                    data.extend_from_slice(u);
                    data.extend_from_slice(v);
                    convert::yuv420_strided_to_i420(
                        &data,
                        w,
                        h,
                        *stride,
                        [0, y.len(), y.len() + u.len()],
                        eye,
                    )
                }
                other => Err(anyhow!("unexpected plane layout ({} planes)", other.len())),
            }
        };
        let seq = req.sequence() as u64;
        req.reuse(ReuseFlag::REUSE_BUFFERS);
        active[i]
            .queue_request(req)
            .map_err(|(_, e)| anyhow!("requeue: {e}"))?;
        let msg = frame
            .map(|frame| CapturedFrame {
                timestamp_ns: ts,
                sequence: seq,
                frame,
            })
            .map_err(|e| format!("{e:#}"));
        match out[i].try_send(msg) {
            Ok(()) | Err(crossbeam_channel::TrySendError::Full(_)) => {}
            Err(crossbeam_channel::TrySendError::Disconnected(_)) => return Ok(()),
        }
    }
}
