//! `pi-streamer list-cameras`: what this machine's cameras are and what they can do, as
//! rpicam-apps' `--list-cameras` and `v4l2-ctl --list-formats-ext` show it, with the `source:`
//! value to put in the configuration for each.

use std::fmt::Write;

use crate::v4l2::{self, FrameSizes};

/// Every camera found, as text.
pub fn describe() -> String {
    let mut o = String::new();
    o += &libcamera_cameras();
    o += &v4l2_cameras();
    o
}

#[cfg(feature = "libcamera")]
fn libcamera_cameras() -> String {
    use libcamera::camera_manager::CameraManager;
    use libcamera::stream::StreamRole;
    let mut o = String::from("libcamera (Raspberry Pi CSI cameras):\n");
    let mgr = match CameraManager::new() {
        Ok(m) => m,
        Err(e) => return format!("{o}  cannot start the camera manager: {e}\n\n"),
    };
    let list = mgr.cameras();
    if list.is_empty() {
        o += "  no camera found (is the ribbon cable seated, and camera_auto_detect=1 in config.txt?)\n";
    }
    for i in 0..list.len() {
        let Some(cam) = list.get(i) else { continue };
        let _ = writeln!(o, "  source: libcamera:{i}   id {}", cam.id());
        // The Raw role lists the sensor's own modes: what `camera.sensor_mode` picks from.
        match cam.generate_configuration(&[StreamRole::Raw]) {
            Some(cc) => {
                if let Some(s) = cc.get(0) {
                    let formats = s.formats();
                    for pf in formats.pixel_formats().into_iter() {
                        let sizes: Vec<String> = formats
                            .sizes(pf)
                            .iter()
                            .map(|z| format!("{}x{}", z.width, z.height))
                            .collect();
                        let _ = writeln!(o, "    sensor modes {pf:?}: {}", sizes.join(", "));
                    }
                }
            }
            None => o += "    (no raw configuration: modes unknown)\n",
        }
    }
    o + "\n"
}

#[cfg(not(feature = "libcamera"))]
fn libcamera_cameras() -> String {
    "libcamera (Raspberry Pi CSI cameras): not in this build \
     (cargo build --release -p pi-streamer --features libcamera, on Raspberry Pi OS)\n\n"
        .to_string()
}

fn v4l2_cameras() -> String {
    let mut o = String::from("V4L2 (USB and other capture devices):\n");
    let mut found = 0;
    let mut pipeline_nodes = 0;
    for path in v4l2::video_nodes() {
        let dev = match v4l2::Device::open(&path) {
            Ok(d) => d,
            Err(e) => {
                let _ = writeln!(o, "  {}: cannot open: {e}", path.display());
                continue;
            }
        };
        let Ok(cap) = dev.query_cap() else { continue };
        if cap.caps() & v4l2::CAP_VIDEO_CAPTURE == 0 {
            continue; // an encoder, a metadata node, an output: not a camera
        }
        if is_camera_pipeline_node(&cap.driver()) {
            // The CSI receiver and ISP nodes of the Pi's camera pipeline: raw Bayer and
            // intermediate streams that libcamera drives, not cameras to open by themselves.
            pipeline_nodes += 1;
            continue;
        }
        found += 1;
        let _ = writeln!(o, "  source: v4l2:{}   {}", path.display(), cap.card());
        for f in dev.formats(v4l2::BUF_TYPE_VIDEO_CAPTURE) {
            let name = fourcc_name(f);
            match dev.frame_sizes(f) {
                FrameSizes::Discrete(sizes) if sizes.is_empty() => {
                    let _ = writeln!(o, "    {name}");
                }
                FrameSizes::Discrete(sizes) => {
                    let all: Vec<String> = sizes
                        .iter()
                        .map(|((w, h), rates)| match rates.first() {
                            Some(r) => format!("{w}x{h}@{}", trim(*r)),
                            None => format!("{w}x{h}"),
                        })
                        .collect();
                    let _ = writeln!(o, "    {name}: {}", all.join(", "));
                }
                FrameSizes::Stepwise { min, max, step } => {
                    let _ = writeln!(
                        o,
                        "    {name}: {}x{} to {}x{} in steps of {}x{}",
                        min.0, min.1, max.0, max.1, step.0, step.1
                    );
                }
            }
        }
    }
    if found == 0 {
        o += "  no capture device under /dev/video*\n";
    }
    if pipeline_nodes > 0 {
        let _ = writeln!(
            o,
            "  ({pipeline_nodes} nodes of the Pi's camera pipeline (CSI receiver, ISP) not shown: \
             their cameras are libcamera's)"
        );
    }
    o
}

/// Drivers of the Raspberry Pi's camera pipeline (CSI-2 receivers, ISPs, codecs), whose nodes
/// libcamera uses and a V4L2 source must not.
fn is_camera_pipeline_node(driver: &str) -> bool {
    [
        "unicam",
        "rp1-cfe",
        "bcm2835-isp",
        "pispbe",
        "bcm2835-codec",
        "rpivid",
    ]
    .contains(&driver)
}

/// `YUYV`, `MJPG`: a V4L2 pixel format's four characters.
fn fourcc_name(f: u32) -> String {
    f.to_le_bytes()
        .iter()
        .map(|&b| if b.is_ascii_graphic() { b as char } else { '?' })
        .collect()
}

/// 30 → "30", 29.97 → "29.97".
fn trim(r: f64) -> String {
    let s = format!("{r:.2}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_and_rates_read_as_users_write_them() {
        assert_eq!(fourcc_name(v4l2::PIX_YUYV), "YUYV");
        assert_eq!(fourcc_name(v4l2::PIX_MJPEG), "MJPG");
        assert_eq!(trim(30.0), "30");
        assert_eq!(trim(29.97), "29.97");
        assert_eq!(trim(7.5), "7.5");
    }

    #[test]
    fn the_pis_camera_pipeline_nodes_are_not_cameras() {
        assert!(is_camera_pipeline_node("rp1-cfe") && is_camera_pipeline_node("unicam"));
        assert!(!is_camera_pipeline_node("uvcvideo"));
    }

    #[test]
    fn every_kind_of_camera_is_reported_on_even_with_none() {
        let d = describe();
        assert!(d.contains("libcamera"), "{d}");
        assert!(d.contains("V4L2"), "{d}");
    }
}
