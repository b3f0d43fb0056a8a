//! Offscreen mode (no display, e.g. CI on Mesa's lavapipe): each eye's view renders into an
//! image that is read back every frame; the pixel code in each read-back names the eye and the
//! frame it shows, so the eye mapping is checked from the rendered pixels. Also the PNG writer
//! behind `--dump` and the desktop's `--screenshot`.

use std::io::BufWriter;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result};
use bevy::prelude::*;
use bevy::render::gpu_readback::{Readback, ReadbackComplete};
use bevy::render::render_resource::TextureFormat;
use bevy::render::view::screenshot::{Screenshot, ScreenshotCaptured};
use shared_proto::{pixel_code, Eye};

use super::eyes::{EyeImages, Scene};
use super::yuv::{luma_of_rgba, median_chroma_of_rgba};

/// What each eye's rendered view showed, frame after frame.
#[derive(Clone, Default)]
pub struct OffscreenViews(Arc<Mutex<ViewsLog>>);

#[derive(Debug, Default, Clone)]
pub struct ViewsLog {
    /// Per eye view (index 0: the left eye's view), the pixel code read from each read-back:
    /// (the eye it names, its frame number), or `None` when unreadable (nothing shown yet).
    pub codes: [Vec<Option<(Eye, u32)>>; 2],
    /// Per eye view, the median chroma (U, V) of the latest read-back (see
    /// [`median_chroma_of_rgba`]).
    pub chroma: [Option<(u8, u8)>; 2],
}

impl OffscreenViews {
    pub fn log(&self) -> ViewsLog {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

pub struct OffscreenPlugin {
    pub views: OffscreenViews,
    pub dump: Option<PathBuf>,
}

#[derive(Resource, Clone)]
struct Views {
    log: OffscreenViews,
    dump: Option<PathBuf>,
}

#[derive(Component, Clone, Copy)]
struct ViewOf(Eye);

impl Plugin for OffscreenPlugin {
    fn build(&self, app: &mut App) {
        app.insert_resource(Views {
            log: self.views.clone(),
            dump: self.dump.clone(),
        })
        .add_systems(PostStartup, start_readbacks);
    }
}

fn start_readbacks(mut commands: Commands, eyes: Res<EyeImages>) {
    let Some(views) = &eyes.views else { return };
    for eye in Eye::BOTH {
        commands
            .spawn((Readback::texture(views[eye.index()].clone()), ViewOf(eye)))
            .observe(on_readback);
    }
}

fn on_readback(ev: On<ReadbackComplete>, of: Query<&ViewOf>, scene: Res<Scene>, views: Res<Views>) {
    let Ok(ViewOf(eye)) = of.get(ev.entity) else {
        return;
    };
    let (w, h) = (scene.view_size.0 as usize, scene.view_size.1 as usize);
    if ev.data.len() < w * h * 4 {
        return;
    }
    let stride = ev.data.len() / h;
    let luma = luma_of_rgba(&ev.data, w, h, stride);
    let code = pixel_code::read(&luma, w, w, h);
    let chroma = median_chroma_of_rgba(&ev.data, w, h, stride);
    let n = {
        let mut log = views.log.0.lock().unwrap_or_else(|p| p.into_inner());
        log.codes[eye.index()].push(code);
        if code.is_some() {
            log.chroma[eye.index()] = Some(chroma);
        }
        log.codes[eye.index()].len()
    };
    if let Some(dir) = &views.dump {
        // Every 30th view, overwriting: the newest picture of each eye stays on disk.
        if n % 30 == 1 {
            let tight: Vec<u8> = ev
                .data
                .chunks(stride)
                .take(h)
                .flat_map(|row| row[..w * 4].iter().copied())
                .collect();
            let path = dir.join(format!("{}.png", eye.name()));
            if let Err(e) = write_png(&path, w as u32, h as u32, &tight) {
                tracing::warn!("{e:#}");
            }
        }
    }
}

/// Writes tightly packed RGBA8 as a PNG.
pub fn write_png(path: &Path, width: u32, height: u32, rgba: &[u8]) -> Result<()> {
    let file =
        std::fs::File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
    let mut enc = png::Encoder::new(BufWriter::new(file), width, height);
    enc.set_color(png::ColorType::Rgba);
    enc.set_depth(png::BitDepth::Eight);
    let mut w = enc.write_header()?;
    w.write_image_data(rgba)?;
    w.finish()?;
    Ok(())
}

/// Desktop `--screenshot PATH`: captures the window once `after` seconds of stream were shown.
pub struct ScreenshotPlugin {
    pub path: PathBuf,
    pub after_s: f64,
}

#[derive(Resource)]
struct PendingShot {
    path: PathBuf,
    after_s: f64,
    /// When both eyes had first shown (app time, s).
    streaming_since: Option<f64>,
    taken: bool,
}

impl Plugin for ScreenshotPlugin {
    fn build(&self, app: &mut App) {
        app.insert_resource(PendingShot {
            path: self.path.clone(),
            after_s: self.after_s,
            streaming_since: None,
            taken: false,
        })
        .add_systems(Update, take_screenshot);
    }
}

fn take_screenshot(
    mut commands: Commands,
    mut shot: ResMut<PendingShot>,
    state: Res<super::stream::StreamState>,
    time: Res<Time<Real>>,
) {
    let streaming = Eye::BOTH.iter().all(|&e| state.mailbox.delivered(e) > 0);
    if shot.taken || !streaming {
        return;
    }
    let now = time.elapsed_secs_f64();
    let since = *shot.streaming_since.get_or_insert(now);
    if now - since < shot.after_s {
        return;
    }
    shot.taken = true;
    let path = shot.path.clone();
    commands
        .spawn(Screenshot::primary_window())
        .observe(move |ev: On<ScreenshotCaptured>| {
            let img = &ev.image;
            let (w, h) = (img.width(), img.height());
            let Some(data) = img.data.as_ref() else {
                return;
            };
            let bgra = matches!(
                img.texture_descriptor.format,
                TextureFormat::Bgra8Unorm | TextureFormat::Bgra8UnormSrgb
            );
            let rgba: Vec<u8> = data
                .chunks_exact(4)
                .flat_map(|p| {
                    if bgra {
                        [p[2], p[1], p[0], 255]
                    } else {
                        [p[0], p[1], p[2], 255]
                    }
                })
                .collect();
            match write_png(&path, w, h, &rgba) {
                Ok(()) => tracing::info!(path = %path.display(), "screenshot saved"),
                Err(e) => tracing::warn!("screenshot: {e:#}"),
            }
        });
}
