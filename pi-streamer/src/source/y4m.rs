//! Raw video from a YUV4MPEG2 file (4:2:0, 8 bit): one file per eye, or one half of a
//! side-by-side stereo file. Loops at the end when asked to (a replayed recording behaves like
//! a live camera).

use std::fs::File;
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use shared_proto::Eye;

use super::{crop, EyeSource, RawFrame};
use crate::config::Crop;

/// A parsed `YUV4MPEG2` stream header.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Y4mHeader {
    pub width: usize,
    pub height: usize,
    pub fps: Option<f64>,
}

/// Parses the header line (without the trailing newline).
pub fn parse_header(line: &str) -> Result<Y4mHeader> {
    let mut it = line.split(' ');
    if it.next() != Some("YUV4MPEG2") {
        bail!("not a YUV4MPEG2 file (bad signature)");
    }
    let (mut w, mut h, mut fps) = (None, None, None);
    for tok in it.filter(|t| !t.is_empty()) {
        let (tag, val) = tok.split_at(1);
        match tag {
            "W" => w = Some(val.parse::<usize>().context("bad W")?),
            "H" => h = Some(val.parse::<usize>().context("bad H")?),
            "F" => {
                let (n, d) = val.split_once(':').context("bad F")?;
                let (n, d): (f64, f64) = (n.parse().context("bad F")?, d.parse().context("bad F")?);
                if d > 0.0 {
                    fps = Some(n / d);
                }
            }
            "C" if !val.starts_with("420") || val.contains("p10") || val.contains("p12") => {
                bail!("unsupported colour space C{val}: only 8-bit 4:2:0 is supported");
            }
            "I" if val != "p" && val != "?" => bail!("interlaced Y4M (I{val}) is not supported"),
            _ => {}
        }
    }
    let (width, height) = (w.context("missing W")?, h.context("missing H")?);
    if width == 0
        || height == 0
        || width > 7680
        || height > 4320
        || width % 2 != 0
        || height % 2 != 0
    {
        bail!("unsupported size {width}x{height} (even, up to 7680x4320)");
    }
    Ok(Y4mHeader { width, height, fps })
}

pub struct Y4mSource {
    path: PathBuf,
    reader: BufReader<File>,
    header: Y4mHeader,
    data_start: u64,
    half: Option<Eye>,
    looping: bool,
}

impl Y4mSource {
    pub fn open(path: &Path, half: Option<Eye>, looping: bool) -> Result<Self> {
        let file = File::open(path).with_context(|| format!("opening {}", path.display()))?;
        let mut reader = BufReader::new(file);
        let mut line = String::new();
        (&mut reader).take(1024).read_line(&mut line)?;
        if !line.ends_with('\n') {
            bail!("{}: header line missing or too long", path.display());
        }
        let header = parse_header(line.trim_end()).with_context(|| path.display().to_string())?;
        if half.is_some() && header.width % 4 != 0 {
            bail!(
                "{}: a side-by-side file needs a width divisible by 4",
                path.display()
            );
        }
        let data_start = line.len() as u64;
        Ok(Y4mSource {
            path: path.to_owned(),
            reader,
            header,
            data_start,
            half,
            looping,
        })
    }

    pub fn header(&self) -> Y4mHeader {
        self.header
    }

    fn read_frame(&mut self) -> Result<Option<Vec<u8>>> {
        let mut tag = String::new();
        (&mut self.reader).take(256).read_line(&mut tag)?;
        if tag.is_empty() {
            return Ok(None);
        }
        if !tag.starts_with("FRAME") || !tag.ends_with('\n') {
            bail!("{}: bad frame marker", self.path.display());
        }
        let mut data = vec![0; self.header.width * self.header.height * 3 / 2];
        match self.reader.read_exact(&mut data) {
            Ok(()) => Ok(Some(data)),
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Ok(None),
            Err(e) => Err(e.into()),
        }
    }
}

impl EyeSource for Y4mSource {
    fn next_frame(&mut self, frame_no: u64) -> Result<Option<RawFrame>> {
        let data = match self.read_frame()? {
            Some(d) => d,
            None if self.looping => {
                self.reader.seek(SeekFrom::Start(self.data_start))?;
                match self.read_frame()? {
                    Some(d) => d,
                    None => bail!("{}: no complete frame", self.path.display()),
                }
            }
            None => return Ok(None),
        };
        let (w, h) = (self.header.width, self.header.height);
        let full = RawFrame {
            eye: Eye::Left,
            frame_no,
            capture_ns: 0,
            width: w,
            height: h,
            data,
        };
        Ok(Some(match self.half {
            None => full,
            Some(eye) => {
                let x = if eye == Eye::Left { 0 } else { w as u32 / 2 };
                crop(
                    &full,
                    Crop {
                        x,
                        y: 0,
                        width: w as u32 / 2,
                        height: h as u32,
                    },
                )?
            }
        }))
    }

    fn describe(&self) -> String {
        let half = self
            .half
            .map(|e| format!(" ({e} half)"))
            .unwrap_or_default();
        format!(
            "y4m {} {}x{}{half}",
            self.path.display(),
            self.header.width,
            self.header.height
        )
    }
}

/// Writes frames as a Y4M file (used by tests and to record the synthetic source).
pub fn write_y4m(
    path: &Path,
    width: usize,
    height: usize,
    fps: u32,
    frames: &[Vec<u8>],
) -> Result<()> {
    use std::io::Write;
    let mut f = std::io::BufWriter::new(File::create(path)?);
    writeln!(f, "YUV4MPEG2 W{width} H{height} F{fps}:1 Ip A1:1 C420jpeg")?;
    for fr in frames {
        f.write_all(b"FRAME\n")?;
        f.write_all(fr)?;
    }
    f.flush()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_parsing() {
        let h = parse_header("YUV4MPEG2 W640 H480 F30000:1001 Ip A1:1 C420jpeg XYSCSS=420JPEG")
            .unwrap();
        assert_eq!((h.width, h.height), (640, 480));
        assert!((h.fps.unwrap() - 29.97).abs() < 0.01);
        assert!(parse_header("YUV4MPEG2 W640 H480 C444").is_err());
        assert!(parse_header("YUV4MPEG2 W640").is_err());
        assert!(parse_header("MPEG W640 H480").is_err());
        assert!(parse_header("YUV4MPEG2 W641 H480").is_err());
        assert!(parse_header("YUV4MPEG2 W99999999999999999999 H480").is_err());
    }

    #[test]
    fn reads_loops_and_splits_side_by_side() {
        let dir = std::env::temp_dir().join(format!("binoc-y4m-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("sbs.y4m");
        let (w, h) = (16, 4);
        let frames: Vec<Vec<u8>> = (0..2u8)
            .map(|n| {
                let mut d = vec![0u8; w * h * 3 / 2];
                for row in 0..h {
                    for x in 0..w {
                        d[row * w + x] = n * 100 + if x < w / 2 { 1 } else { 2 };
                    }
                }
                d
            })
            .collect();
        write_y4m(&p, w, h, 30, &frames).unwrap();
        let mut right = Y4mSource::open(&p, Some(Eye::Right), true).unwrap();
        let seen: Vec<u8> = (0..3)
            .map(|n| right.next_frame(n).unwrap().unwrap().y()[0])
            .collect();
        assert_eq!(seen, vec![2, 102, 2], "right half, looping");
        let mut left = Y4mSource::open(&p, Some(Eye::Left), false).unwrap();
        let f = left.next_frame(0).unwrap().unwrap();
        assert_eq!((f.width, f.y()[0]), (8, 1));
        left.next_frame(1).unwrap().unwrap();
        assert!(left.next_frame(2).unwrap().is_none(), "no loop: ends");
        // A truncated file ends cleanly instead of yielding a partial frame.
        let bytes = std::fs::read(&p).unwrap();
        let t = dir.join("trunc.y4m");
        std::fs::write(&t, &bytes[..bytes.len() - 5]).unwrap();
        let mut s = Y4mSource::open(&t, None, false).unwrap();
        assert!(s.next_frame(0).unwrap().is_some());
        assert!(s.next_frame(1).unwrap().is_none());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
