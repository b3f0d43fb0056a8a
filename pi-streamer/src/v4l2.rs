//! A thin, safe layer over the V4L2 ioctls binoc uses: capture from USB cameras
//! (`source::v4l2`) and the stateful memory-to-memory H.264 encoder (`encode::v4l2m2m`).
//!
//! Written against `<linux/videodev2.h>` directly rather than a crate: `v4l` has no M2M API and
//! `v4l2r` does not build against bookworm's 6.1 headers (docs/decisions.md). The struct
//! layouts are checked against the system header by a unit test on every architecture the
//! tests run on.

use std::ffi::c_void;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

pub const BUF_TYPE_VIDEO_CAPTURE: u32 = 1;
pub const BUF_TYPE_VIDEO_CAPTURE_MPLANE: u32 = 9;
pub const BUF_TYPE_VIDEO_OUTPUT_MPLANE: u32 = 10;
pub const MEMORY_MMAP: u32 = 1;
pub const FIELD_NONE: u32 = 1;
pub const BUF_FLAG_KEYFRAME: u32 = 0x8;
pub const BUF_FLAG_ERROR: u32 = 0x40;
pub const BUF_FLAG_TIMESTAMP_MONOTONIC: u32 = 0x2000;
pub const BUF_FLAG_TIMESTAMP_MASK: u32 = 0xe000;

pub const CAP_VIDEO_CAPTURE: u32 = 0x1;
pub const CAP_VIDEO_M2M_MPLANE: u32 = 0x4000;
pub const CAP_STREAMING: u32 = 0x0400_0000;
pub const CAP_DEVICE_CAPS: u32 = 0x8000_0000;

pub const CID_CODEC_BASE: u32 = 0x0099_0900;
pub const CID_GOP_SIZE: u32 = CID_CODEC_BASE + 203;
pub const CID_BITRATE_MODE: u32 = CID_CODEC_BASE + 206;
pub const CID_BITRATE: u32 = CID_CODEC_BASE + 207;
pub const CID_REPEAT_SEQ_HEADER: u32 = CID_CODEC_BASE + 226;
pub const CID_FORCE_KEY_FRAME: u32 = CID_CODEC_BASE + 229;
pub const CID_H264_MIN_QP: u32 = CID_CODEC_BASE + 353;
pub const CID_H264_MAX_QP: u32 = CID_CODEC_BASE + 354;
pub const CID_H264_I_PERIOD: u32 = CID_CODEC_BASE + 358;
pub const CID_H264_LEVEL: u32 = CID_CODEC_BASE + 359;
pub const CID_H264_PROFILE: u32 = CID_CODEC_BASE + 363;

pub const fn fourcc(s: &[u8; 4]) -> u32 {
    (s[0] as u32) | (s[1] as u32) << 8 | (s[2] as u32) << 16 | (s[3] as u32) << 24
}
pub const PIX_H264: u32 = fourcc(b"H264");
pub const PIX_YUV420: u32 = fourcc(b"YU12");
pub const PIX_YUYV: u32 = fourcc(b"YUYV");
pub const PIX_NV12: u32 = fourcc(b"NV12");
pub const PIX_MJPEG: u32 = fourcc(b"MJPG");

#[repr(C)]
#[derive(Clone, Copy)]
pub struct Capability {
    pub driver: [u8; 16],
    pub card: [u8; 32],
    pub bus_info: [u8; 32],
    pub version: u32,
    pub capabilities: u32,
    pub device_caps: u32,
    pub reserved: [u32; 3],
}

impl Capability {
    /// The capabilities of this device node (not of the whole driver).
    pub fn caps(&self) -> u32 {
        if self.capabilities & CAP_DEVICE_CAPS != 0 {
            self.device_caps
        } else {
            self.capabilities
        }
    }
    pub fn card(&self) -> String {
        let end = self.card.iter().position(|&b| b == 0).unwrap_or(32);
        String::from_utf8_lossy(&self.card[..end]).into_owned()
    }
    pub fn driver(&self) -> String {
        let end = self.driver.iter().position(|&b| b == 0).unwrap_or(16);
        String::from_utf8_lossy(&self.driver[..end]).into_owned()
    }
}

#[repr(C)]
#[derive(Clone, Copy)]
pub struct PlanePixFormat {
    pub sizeimage: u32,
    pub bytesperline: u32,
    pub reserved: [u16; 6],
}

#[repr(C)]
#[derive(Clone, Copy)]
pub struct PixFormatMplane {
    pub width: u32,
    pub height: u32,
    pub pixelformat: u32,
    pub field: u32,
    pub colorspace: u32,
    pub plane_fmt: [PlanePixFormat; 8],
    pub num_planes: u8,
    pub flags: u8,
    pub ycbcr_enc: u8,
    pub quantization: u8,
    pub xfer_func: u8,
    pub reserved: [u8; 7],
}

#[repr(C)]
#[derive(Clone, Copy)]
pub struct PixFormat {
    pub width: u32,
    pub height: u32,
    pub pixelformat: u32,
    pub field: u32,
    pub bytesperline: u32,
    pub sizeimage: u32,
    pub colorspace: u32,
    pub priv_: u32,
    pub flags: u32,
    pub ycbcr_enc: u32,
    pub quantization: u32,
    pub xfer_func: u32,
}

#[repr(C)]
#[derive(Clone, Copy)]
pub union FormatUnion {
    pub pix: PixFormat,
    pub pix_mp: PixFormatMplane,
    pub raw: [u8; 200],
    _align: [*const c_void; 0],
}

#[repr(C)]
#[derive(Clone, Copy)]
pub struct Format {
    pub typ: u32,
    pub fmt: FormatUnion,
}

impl Format {
    pub fn zeroed(typ: u32) -> Self {
        Format {
            typ,
            fmt: FormatUnion { raw: [0; 200] },
        }
    }

    /// A single-plane multi-planar format request: `w`×`h` of `pixelformat`, with the first
    /// plane's `sizeimage` and `bytesperline` hints (0: the driver's choice).
    pub fn mplane(
        typ: u32,
        w: u32,
        h: u32,
        pixelformat: u32,
        sizeimage: u32,
        bytesperline: u32,
    ) -> Self {
        let mut plane_fmt = [PlanePixFormat {
            sizeimage: 0,
            bytesperline: 0,
            reserved: [0; 6],
        }; 8];
        plane_fmt[0].sizeimage = sizeimage;
        plane_fmt[0].bytesperline = bytesperline;
        let mut f = Format::zeroed(typ);
        f.fmt.pix_mp = PixFormatMplane {
            width: w,
            height: h,
            pixelformat,
            field: FIELD_NONE,
            colorspace: 0,
            plane_fmt,
            num_planes: 1,
            flags: 0,
            ycbcr_enc: 0,
            quantization: 0,
            xfer_func: 0,
            reserved: [0; 7],
        };
        f
    }
}

#[repr(C)]
#[derive(Clone, Copy, Default)]
pub struct RequestBuffers {
    pub count: u32,
    pub typ: u32,
    pub memory: u32,
    pub capabilities: u32,
    pub flags: u8,
    pub reserved: [u8; 3],
}

#[repr(C)]
#[derive(Clone, Copy)]
pub union PlaneM {
    pub mem_offset: u32,
    pub userptr: libc::c_ulong,
    pub fd: i32,
}

#[repr(C)]
#[derive(Clone, Copy)]
pub struct Plane {
    pub bytesused: u32,
    pub length: u32,
    pub m: PlaneM,
    pub data_offset: u32,
    pub reserved: [u32; 11],
}

impl Default for Plane {
    fn default() -> Self {
        Plane {
            bytesused: 0,
            length: 0,
            m: PlaneM { userptr: 0 },
            data_offset: 0,
            reserved: [0; 11],
        }
    }
}

#[repr(C)]
#[derive(Clone, Copy)]
pub union BufferM {
    pub offset: u32,
    pub userptr: libc::c_ulong,
    pub planes: *mut Plane,
    pub fd: i32,
}

#[repr(C)]
#[derive(Clone, Copy)]
pub struct Buffer {
    pub index: u32,
    pub typ: u32,
    pub bytesused: u32,
    pub flags: u32,
    pub field: u32,
    pub timestamp: libc::timeval,
    pub timecode: [u32; 4],
    pub sequence: u32,
    pub memory: u32,
    pub m: BufferM,
    pub length: u32,
    pub reserved2: u32,
    pub request_fd: i32,
}

impl Buffer {
    pub fn new(typ: u32, index: u32) -> Self {
        Buffer {
            index,
            typ,
            bytesused: 0,
            flags: 0,
            field: 0,
            timestamp: libc::timeval {
                tv_sec: 0,
                tv_usec: 0,
            },
            timecode: [0; 4],
            sequence: 0,
            memory: MEMORY_MMAP,
            m: BufferM { userptr: 0 },
            length: 0,
            reserved2: 0,
            request_fd: 0,
        }
    }
    /// The driver's timestamp in ns (CLOCK_MONOTONIC when the flags say so).
    pub fn timestamp_ns(&self) -> Option<u64> {
        if self.flags & BUF_FLAG_TIMESTAMP_MASK != BUF_FLAG_TIMESTAMP_MONOTONIC {
            return None;
        }
        let t = self.timestamp;
        Some(t.tv_sec as u64 * 1_000_000_000 + t.tv_usec as u64 * 1_000)
    }
}

#[repr(C)]
#[derive(Clone, Copy, Default)]
pub struct Control {
    pub id: u32,
    pub value: i32,
}

/// `struct v4l2_frmsizeenum`: `sizes` is the union (discrete: width, height; stepwise: min
/// width, max width, step, min height, max height, step).
#[repr(C)]
#[derive(Clone, Copy, Default)]
pub struct FrmSizeEnum {
    pub index: u32,
    pub pixel_format: u32,
    pub typ: u32,
    pub sizes: [u32; 6],
    pub reserved: [u32; 2],
}

/// `struct v4l2_frmivalenum`: `ival` is the union (discrete: numerator, denominator; stepwise:
/// min, max, step as three fractions).
#[repr(C)]
#[derive(Clone, Copy, Default)]
pub struct FrmIvalEnum {
    pub index: u32,
    pub pixel_format: u32,
    pub width: u32,
    pub height: u32,
    pub typ: u32,
    pub ival: [u32; 6],
    pub reserved: [u32; 2],
}

const FRMSIZE_TYPE_DISCRETE: u32 = 1;
const FRMIVAL_TYPE_DISCRETE: u32 = 1;

/// What a capture device offers for one pixel format.
#[derive(Debug, Clone, PartialEq)]
pub enum FrameSizes {
    /// Sizes, each with its frame rates (empty: the device does not say).
    Discrete(Vec<((u32, u32), Vec<f64>)>),
    /// Any size in `min..=max` by `step`.
    Stepwise {
        min: (u32, u32),
        max: (u32, u32),
        step: (u32, u32),
    },
}

#[repr(C)]
#[derive(Clone, Copy)]
pub struct FmtDesc {
    pub index: u32,
    pub typ: u32,
    pub flags: u32,
    pub description: [u8; 32],
    pub pixelformat: u32,
    pub mbus_code: u32,
    pub reserved: [u32; 3],
}

#[repr(C)]
#[derive(Clone, Copy)]
pub struct CaptureParm {
    pub capability: u32,
    pub capturemode: u32,
    pub timeperframe_num: u32,
    pub timeperframe_den: u32,
    pub extendedmode: u32,
    pub readbuffers: u32,
    pub reserved: [u32; 4],
}

#[repr(C)]
#[derive(Clone, Copy)]
pub struct StreamParm {
    pub typ: u32,
    pub capture: CaptureParm,
    pub raw: [u8; 160],
}

const IOC_WRITE: u64 = 1;
const IOC_READ: u64 = 2;
const fn ioc(dir: u64, nr: u64, size: usize) -> u64 {
    (dir << 30) | ((size as u64) << 16) | ((b'V' as u64) << 8) | nr
}
pub const VIDIOC_QUERYCAP: u64 = ioc(IOC_READ, 0, size_of::<Capability>());
pub const VIDIOC_ENUM_FMT: u64 = ioc(IOC_READ | IOC_WRITE, 2, size_of::<FmtDesc>());
pub const VIDIOC_S_FMT: u64 = ioc(IOC_READ | IOC_WRITE, 5, size_of::<Format>());
pub const VIDIOC_REQBUFS: u64 = ioc(IOC_READ | IOC_WRITE, 8, size_of::<RequestBuffers>());
pub const VIDIOC_QUERYBUF: u64 = ioc(IOC_READ | IOC_WRITE, 9, size_of::<Buffer>());
pub const VIDIOC_QBUF: u64 = ioc(IOC_READ | IOC_WRITE, 15, size_of::<Buffer>());
pub const VIDIOC_DQBUF: u64 = ioc(IOC_READ | IOC_WRITE, 17, size_of::<Buffer>());
pub const VIDIOC_STREAMON: u64 = ioc(IOC_WRITE, 18, size_of::<i32>());
pub const VIDIOC_STREAMOFF: u64 = ioc(IOC_WRITE, 19, size_of::<i32>());
pub const VIDIOC_S_PARM: u64 = ioc(IOC_READ | IOC_WRITE, 22, size_of::<StreamParm>());
pub const VIDIOC_S_CTRL: u64 = ioc(IOC_READ | IOC_WRITE, 28, size_of::<Control>());
pub const VIDIOC_ENUM_FRAMESIZES: u64 = ioc(IOC_READ | IOC_WRITE, 74, size_of::<FrmSizeEnum>());
pub const VIDIOC_ENUM_FRAMEINTERVALS: u64 = ioc(IOC_READ | IOC_WRITE, 75, size_of::<FrmIvalEnum>());

/// An open V4L2 device node.
pub struct Device {
    file: File,
    pub path: std::path::PathBuf,
}

impl Device {
    pub fn open(path: &Path) -> io::Result<Self> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
            .open(path)?;
        Ok(Device {
            file,
            path: path.to_path_buf(),
        })
    }

    /// Issues one ioctl whose argument is `T` (retrying on EINTR).
    ///
    /// # Safety
    /// `req` must be an ioctl whose argument is exactly a `T` (the constants above are; their
    /// sizes are checked against the system header by the tests).
    pub unsafe fn ioctl<T>(&self, req: u64, arg: &mut T) -> io::Result<()> {
        loop {
            // SAFETY: per the contract above, the kernel reads/writes one `T` at `arg`.
            let rc = unsafe {
                libc::ioctl(
                    self.file.as_raw_fd(),
                    req as _,
                    arg as *mut T as *mut c_void,
                )
            };
            if rc >= 0 {
                return Ok(());
            }
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(e);
            }
        }
    }

    pub fn query_cap(&self) -> io::Result<Capability> {
        // SAFETY: all-zero is a valid Capability; VIDIOC_QUERYCAP takes one.
        let mut cap: Capability = unsafe { std::mem::zeroed() };
        unsafe { self.ioctl(VIDIOC_QUERYCAP, &mut cap)? };
        Ok(cap)
    }

    /// The pixel formats the device offers on queue `typ`.
    pub fn formats(&self, typ: u32) -> Vec<u32> {
        let mut out = Vec::new();
        for index in 0..64 {
            let mut d = FmtDesc {
                index,
                typ,
                flags: 0,
                description: [0; 32],
                pixelformat: 0,
                mbus_code: 0,
                reserved: [0; 3],
            };
            // SAFETY: VIDIOC_ENUM_FMT takes one FmtDesc.
            if unsafe { self.ioctl(VIDIOC_ENUM_FMT, &mut d) }.is_err() {
                break;
            }
            out.push(d.pixelformat);
        }
        out
    }

    /// The frame sizes (and, for discrete sizes, the frame rates) offered for `pixel_format`.
    pub fn frame_sizes(&self, pixel_format: u32) -> FrameSizes {
        let mut sizes = Vec::new();
        for index in 0..64 {
            let mut f = FrmSizeEnum {
                index,
                pixel_format,
                ..Default::default()
            };
            // SAFETY: VIDIOC_ENUM_FRAMESIZES takes one FrmSizeEnum.
            if unsafe { self.ioctl(VIDIOC_ENUM_FRAMESIZES, &mut f) }.is_err() {
                break;
            }
            if f.typ != FRMSIZE_TYPE_DISCRETE {
                let z = f.sizes;
                return FrameSizes::Stepwise {
                    min: (z[0], z[3]),
                    max: (z[1], z[4]),
                    step: (z[2], z[5]),
                };
            }
            let (w, h) = (f.sizes[0], f.sizes[1]);
            sizes.push(((w, h), self.frame_rates(pixel_format, w, h)));
        }
        FrameSizes::Discrete(sizes)
    }

    /// The discrete frame rates offered for one format and size, highest first.
    fn frame_rates(&self, pixel_format: u32, width: u32, height: u32) -> Vec<f64> {
        let mut rates = Vec::new();
        for index in 0..64 {
            let mut f = FrmIvalEnum {
                index,
                pixel_format,
                width,
                height,
                ..Default::default()
            };
            // SAFETY: VIDIOC_ENUM_FRAMEINTERVALS takes one FrmIvalEnum.
            if unsafe { self.ioctl(VIDIOC_ENUM_FRAMEINTERVALS, &mut f) }.is_err()
                || f.typ != FRMIVAL_TYPE_DISCRETE
            {
                break;
            }
            let (num, den) = (f.ival[0], f.ival[1]);
            if num > 0 {
                rates.push(f64::from(den) / f64::from(num));
            }
        }
        rates.sort_by(|a, b| b.total_cmp(a));
        rates
    }

    pub fn set_format(&self, f: &mut Format) -> io::Result<()> {
        // SAFETY: VIDIOC_S_FMT takes one Format.
        unsafe { self.ioctl(VIDIOC_S_FMT, f) }
    }

    /// Asks for `fps` frames per second (capture queues); drivers may round it.
    pub fn set_frame_rate(&self, typ: u32, fps: f64) -> io::Result<()> {
        let mut p = StreamParm {
            typ,
            capture: CaptureParm {
                capability: 0,
                capturemode: 0,
                timeperframe_num: 1000,
                timeperframe_den: (fps * 1000.0).round() as u32,
                extendedmode: 0,
                readbuffers: 0,
                reserved: [0; 4],
            },
            raw: [0; 160],
        };
        // SAFETY: VIDIOC_S_PARM takes one StreamParm.
        unsafe { self.ioctl(VIDIOC_S_PARM, &mut p) }
    }

    pub fn set_control(&self, id: u32, value: i32) -> io::Result<()> {
        let mut c = Control { id, value };
        // SAFETY: VIDIOC_S_CTRL takes one Control.
        unsafe { self.ioctl(VIDIOC_S_CTRL, &mut c) }
    }

    pub fn request_buffers(&self, typ: u32, count: u32) -> io::Result<u32> {
        let mut r = RequestBuffers {
            count,
            typ,
            memory: MEMORY_MMAP,
            ..Default::default()
        };
        // SAFETY: VIDIOC_REQBUFS takes one RequestBuffers.
        unsafe { self.ioctl(VIDIOC_REQBUFS, &mut r)? };
        Ok(r.count)
    }

    pub fn stream(&self, typ: u32, on: bool) -> io::Result<()> {
        let mut t = typ as i32;
        let req = if on {
            VIDIOC_STREAMON
        } else {
            VIDIOC_STREAMOFF
        };
        // SAFETY: STREAMON/STREAMOFF take one int.
        unsafe { self.ioctl(req, &mut t) }
    }

    /// Waits until the device is readable (a buffer can be dequeued) or `timeout_ms` passes.
    pub fn wait_readable(&self, timeout_ms: i32) -> io::Result<bool> {
        let mut p = libc::pollfd {
            fd: self.file.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd.
        let rc = unsafe { libc::poll(&mut p, 1, timeout_ms) };
        if rc < 0 {
            let e = io::Error::last_os_error();
            return if e.kind() == io::ErrorKind::Interrupted {
                Ok(false)
            } else {
                Err(e)
            };
        }
        if p.revents & libc::POLLERR != 0 {
            return Err(io::Error::other("device reported an error (POLLERR)"));
        }
        Ok(rc > 0)
    }

    /// Maps `len` bytes of a driver buffer at `offset`.
    pub fn map(&self, offset: u32, len: u32) -> io::Result<Mapping> {
        // SAFETY: a shared mapping of a V4L2 buffer the driver just described; unmapped on drop.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len as usize,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                self.file.as_raw_fd(),
                offset as libc::off_t,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        Ok(Mapping {
            ptr: ptr as *mut u8,
            len: len as usize,
        })
    }
}

/// One mmap'ed driver buffer (plane).
pub struct Mapping {
    ptr: *mut u8,
    len: usize,
}

// SAFETY: the mapping is plain memory owned by this value.
unsafe impl Send for Mapping {}

impl Mapping {
    pub fn as_slice(&self) -> &[u8] {
        // SAFETY: ptr..ptr+len is mapped for the lifetime of self.
        unsafe { std::slice::from_raw_parts(self.ptr, self.len) }
    }
    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        // SAFETY: as above, and &mut self gives exclusive access on our side.
        unsafe { std::slice::from_raw_parts_mut(self.ptr, self.len) }
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: ptr/len came from a successful mmap.
        unsafe { libc::munmap(self.ptr as *mut c_void, self.len) };
    }
}

/// `/dev/video*` nodes, in numeric order.
pub fn video_nodes() -> Vec<std::path::PathBuf> {
    let mut v: Vec<(u32, std::path::PathBuf)> = std::fs::read_dir("/dev")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let n: u32 = name.strip_prefix("video")?.parse().ok()?;
            Some((n, e.path()))
        })
        .collect();
    v.sort();
    v.into_iter().map(|(_, p)| p).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    extern "C" {
        fn binoc_v4l2_layout(what: libc::c_int) -> usize;
    }

    #[test]
    fn layouts_match_the_system_header() {
        // SAFETY: a pure function over compile-time constants.
        let c = |w| unsafe { binoc_v4l2_layout(w) };
        assert_eq!(size_of::<Capability>(), c(0));
        assert_eq!(size_of::<Format>(), c(1));
        assert_eq!(size_of::<PixFormatMplane>(), c(2));
        assert_eq!(size_of::<PixFormat>(), c(3));
        assert_eq!(size_of::<RequestBuffers>(), c(4));
        assert_eq!(size_of::<Buffer>(), c(5));
        assert_eq!(size_of::<Plane>(), c(6));
        assert_eq!(size_of::<Control>(), c(7));
        assert_eq!(size_of::<FmtDesc>(), c(8));
        assert_eq!(std::mem::offset_of!(Buffer, m), c(9));
        assert_eq!(std::mem::offset_of!(Buffer, length), c(10));
        assert_eq!(std::mem::offset_of!(Format, fmt), c(11));
        assert_eq!(std::mem::offset_of!(PixFormatMplane, num_planes), c(12));
        assert_eq!(size_of::<StreamParm>(), c(13));
        assert_eq!(size_of::<FrmSizeEnum>(), c(14));
        assert_eq!(size_of::<FrmIvalEnum>(), c(15));
        for (req, w) in [
            (VIDIOC_QUERYCAP, 20),
            (VIDIOC_S_FMT, 21),
            (VIDIOC_REQBUFS, 22),
            (VIDIOC_QUERYBUF, 23),
            (VIDIOC_QBUF, 24),
            (VIDIOC_DQBUF, 25),
            (VIDIOC_STREAMON, 26),
            (VIDIOC_STREAMOFF, 27),
            (VIDIOC_S_CTRL, 28),
            (VIDIOC_ENUM_FMT, 29),
            (VIDIOC_S_PARM, 30),
            (VIDIOC_ENUM_FRAMESIZES, 31),
            (VIDIOC_ENUM_FRAMEINTERVALS, 32),
        ] {
            assert_eq!(req as usize, c(w), "ioctl {w}");
        }
    }

    #[test]
    fn opening_a_missing_device_is_a_clear_error() {
        let e = Device::open(Path::new("/dev/video-does-not-exist"))
            .err()
            .unwrap();
        assert_eq!(e.kind(), io::ErrorKind::NotFound);
    }
}
