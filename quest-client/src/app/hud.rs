//! The HUD: per-eye fps, bitrate, drops and the latency breakdown including glass-to-glass,
//! redrawn four times a second into a texture on a quad both eyes see (bottom left of the
//! picture). `H` toggles it on the desktop; `hud.visible` in the config sets it at start.

use std::time::Instant;

use bevy::asset::RenderAssetUsages;
use bevy::camera::visibility::RenderLayers;
use bevy::prelude::*;
use bevy::render::render_resource::{Extent3d, TextureDimension, TextureFormat};
use shared_proto::latency::Series;
use shared_proto::wire::LinkStatus;
use shared_proto::Eye;

use super::eyes::HUD_LAYER;
use super::font::{Canvas, CELL_H, CELL_W};
use super::picture::RgbaPicture;
use super::stream::StreamState;
use headset_core::Shared;

const SCALE: usize = 2;
const COLUMNS: usize = 46;
const LINES: usize = 11;
pub const HUD_PIXELS: (usize, usize) = (COLUMNS * CELL_W * SCALE + 16, LINES * CELL_H * SCALE + 12);
/// Samples the HUD's percentiles are taken over (about the last two seconds at 60 fps).
const RECENT: usize = 120;

/// One eye's figures on the HUD.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct EyeFigures {
    /// Pictures decoded per second.
    pub fps: f64,
    /// Pictures shown per second (decoded ones a newer picture replaced first are not).
    pub shown_fps: f64,
    pub mbps: f64,
    /// Frames lost or undecodable since the start.
    pub dropped: u64,
    /// Decoded but replaced by a newer picture before display.
    pub superseded: u64,
    pub decode_p50: f64,
    pub upload_p50: f64,
    pub display_p50: f64,
    /// capture → decoded, streamer clock.
    pub decoded_p50: f64,
    pub g2g_p50: f64,
    pub g2g_p99: f64,
    /// Datagram loss on the link (percent, of what the headers announced), frames rebuilt
    /// from parity, frames whose fragments were asked for again.
    pub loss_pct: f64,
    pub repaired: u64,
    pub nacks: u64,
}

/// The HUD's text; `link`: the streamer's view of the link, when it has said.
pub fn hud_lines(
    eyes: &[EyeFigures; 2],
    clock_uncertainty_ms: Option<f64>,
    link: Option<LinkStatus>,
) -> Vec<String> {
    let clock = clock_uncertainty_ms.map_or("CLOCK: NOT SYNCED".to_string(), |u| {
        format!("CLOCK +-{u:.2} MS")
    });
    let mut out = vec![
        format!("BINOC  H: HIDE   {clock}"),
        "EYE  DEC/S SHOWN/S MBIT/S DROPPED SUPERSEDED".to_string(),
    ];
    for (name, e) in ["L", "R"].iter().zip(eyes) {
        out.push(format!(
            "{name:<3} {:>6.1} {:>7.1} {:>6.2} {:>7} {:>10}",
            e.fps, e.shown_fps, e.mbps, e.dropped, e.superseded
        ));
    }
    out.push("LINK   LOSS% REPAIRED ASKED AGAIN".to_string());
    for (name, e) in ["L", "R"].iter().zip(eyes) {
        out.push(format!(
            "{name:<6} {:>5.2} {:>8} {:>11}",
            e.loss_pct, e.repaired, e.nacks
        ));
    }
    // The streamer's side: what it thinks the link carries, what the encoders aim at, and the
    // parity it adds.
    out.push(
        link.map_or("EST  --  (NO LINK STATUS YET)".to_string(), |l| {
            format!(
                "EST {:.1} ENC {:.1}+{:.1} FEC {:.0}+{:.0}% Q{:.0}",
                l.estimate_bps as f64 / 1e6,
                l.target_bps[0] as f64 / 1e6,
                l.target_bps[1] as f64 / 1e6,
                l.parity_permille[0] as f64 / 10.0,
                l.parity_permille[1] as f64 / 10.0,
                l.queue_us as f64 / 1e3,
            )
        }),
    );
    out.push("MS P50  DEC  UPL DISP C>DEC  G2G P50/P99".to_string());
    for (name, e) in ["L", "R"].iter().zip(eyes) {
        out.push(format!(
            "{name:<6} {:>4.1} {:>4.1} {:>4.1} {:>5.1} {:>6.1}/{:.1}",
            e.decode_p50, e.upload_p50, e.display_p50, e.decoded_p50, e.g2g_p50, e.g2g_p99
        ));
    }
    out
}

/// Draws the HUD text on a translucent panel.
pub fn draw(lines: &[String]) -> Canvas {
    let (w, h) = HUD_PIXELS;
    let mut c = Canvas::new(w, h);
    c.fill([0, 0, 0, 170]);
    for (i, line) in lines.iter().enumerate() {
        c.text(8, 6 + i * CELL_H * SCALE, SCALE, [120, 255, 140, 255], line);
    }
    c
}

#[derive(Component)]
pub struct HudQuad;

#[derive(Resource)]
struct HudState {
    image: Handle<Image>,
    visible: bool,
    last: Instant,
    prev: [(u64, u64, u64); 2],
}

pub struct HudPlugin {
    pub visible: bool,
    pub xr: bool,
}

/// Show or hide the HUD: sent by the H key (desktop) and the controllers (XR, `xr_input.rs`).
#[derive(Message, Clone, Copy, Debug)]
pub struct ToggleHud;

impl Plugin for HudPlugin {
    fn build(&self, app: &mut App) {
        let (visible, xr) = (self.visible, self.xr);
        app.add_systems(
            Startup,
            move |c: Commands,
                  i: ResMut<Assets<Image>>,
                  m: ResMut<Assets<Mesh>>,
                  s: ResMut<Assets<RgbaPicture>>| {
                spawn_hud(c, i, m, s, visible, xr)
            },
        )
        .add_message::<ToggleHud>()
        .add_systems(Update, (key_toggle, toggle_hud, redraw_hud).chain());
    }
}

fn spawn_hud(
    mut commands: Commands,
    mut images: ResMut<Assets<Image>>,
    mut meshes: ResMut<Assets<Mesh>>,
    mut materials: ResMut<Assets<RgbaPicture>>,
    visible: bool,
    xr: bool,
) {
    let (w, h) = HUD_PIXELS;
    let canvas = draw(&hud_lines(&Default::default(), None, None));
    let image = images.add(Image::new(
        Extent3d {
            width: w as u32,
            height: h as u32,
            depth_or_array_layers: 1,
        },
        TextureDimension::D2,
        canvas.rgba,
        TextureFormat::Rgba8UnormSrgb,
        RenderAssetUsages::RENDER_WORLD | RenderAssetUsages::MAIN_WORLD,
    ));
    let material = materials.add(RgbaPicture {
        texture: image.clone(),
    });
    let mut hud = commands.spawn((
        HudQuad,
        Mesh3d(meshes.add(Rectangle::new(1.0, 1.0))),
        MeshMaterial3d(material),
        Transform::default(),
        RenderLayers::layer(HUD_LAYER),
        if visible {
            Visibility::Inherited
        } else {
            Visibility::Hidden
        },
    ));
    if xr {
        hud.insert(bevy_mod_xr::session::XrTracker);
    }
    commands.insert_resource(HudState {
        image,
        visible,
        last: Instant::now(),
        prev: [(0, 0, 0); 2],
    });
}

fn key_toggle(keys: Option<Res<ButtonInput<KeyCode>>>, mut toggle: MessageWriter<ToggleHud>) {
    if keys.is_some_and(|k| k.just_pressed(KeyCode::KeyH)) {
        toggle.write(ToggleHud);
    }
}

fn toggle_hud(
    mut toggles: MessageReader<ToggleHud>,
    mut hud: ResMut<HudState>,
    mut quads: Query<&mut Visibility, With<HudQuad>>,
) {
    // Two presses in one frame cancel out, as they would one frame apart.
    if toggles.read().count() % 2 == 1 {
        hud.visible = !hud.visible;
        for mut v in &mut quads {
            *v = if hud.visible {
                Visibility::Inherited
            } else {
                Visibility::Hidden
            };
        }
    }
}

fn recent_p50(s: &Series) -> f64 {
    s.summary_recent(RECENT).p50
}

/// The figures of one eye from the core's statistics; `prev` holds (decoded, shown, bytes) at
/// the previous redraw, `dt` the seconds since.
fn figures(shared: &Shared, eye: Eye, prev: &mut (u64, u64, u64), dt: f64) -> EyeFigures {
    let s = shared.eyes[eye.index()]
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    let (decoded, shown, bytes) = (s.counts.decoded, s.counts.shown, s.counts.bytes);
    let g2g = s.glass_to_glass.summary_recent(RECENT);
    let f = EyeFigures {
        fps: decoded.saturating_sub(prev.0) as f64 / dt,
        shown_fps: shown.saturating_sub(prev.1) as f64 / dt,
        mbps: bytes.saturating_sub(prev.2) as f64 * 8.0 / dt / 1e6,
        dropped: s.dropped(),
        superseded: s.counts.superseded,
        decode_p50: recent_p50(&s.decode),
        upload_p50: recent_p50(&s.upload),
        display_p50: recent_p50(&s.display),
        decoded_p50: recent_p50(&s.latency),
        g2g_p50: g2g.p50,
        g2g_p99: g2g.p99,
        loss_pct: if s.counts.datagrams_expected > 0 {
            100.0 * (1.0 - s.counts.datagrams_received as f64 / s.counts.datagrams_expected as f64)
        } else {
            0.0
        },
        repaired: s.counts.repaired,
        nacks: s.counts.nacks,
    };
    *prev = (decoded, shown, bytes);
    f
}

fn redraw_hud(
    mut hud: ResMut<HudState>,
    state: Res<StreamState>,
    mut images: ResMut<Assets<Image>>,
) {
    let dt = hud.last.elapsed().as_secs_f64();
    if !hud.visible || dt < 0.25 {
        return;
    }
    hud.last = Instant::now();
    let eyes = Eye::BOTH.map(|eye| figures(&state.shared, eye, &mut hud.prev[eye.index()], dt));
    let clock = state
        .shared
        .clock
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .map(|c| c.uncertainty_ns() as f64 / 1e6);
    let canvas = draw(&hud_lines(&eyes, clock, state.shared.link()));
    if let Some(mut image) = images.get_mut(&hud.image) {
        image.data = Some(canvas.rgba);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lines_fit_the_panel_and_carry_every_figure() {
        let e = EyeFigures {
            fps: 59.94,
            shown_fps: 44.44,
            mbps: 12.345,
            dropped: 123_456,
            superseded: 7,
            decode_p50: 2.1,
            upload_p50: 0.4,
            display_p50: 1.3,
            decoded_p50: 11.2,
            g2g_p50: 14.9,
            g2g_p99: 128.0,
            loss_pct: 1.94,
            repaired: 2718,
            nacks: 31,
        };
        let link = LinkStatus {
            estimate_bps: 123_456_789,
            queue_us: 40_000,
            decreases: 4_000_000_000,
            target_bps: [u32::MAX, 7_900_000],
            parity_permille: [u16::MAX, 260],
        };
        let lines = hud_lines(&[e, e], Some(0.25), Some(link));
        assert_eq!(lines.len(), LINES);
        for l in &lines {
            assert!(
                l.chars().count() <= COLUMNS,
                "{l:?} is wider than {COLUMNS}"
            );
        }
        let all = lines.join("\n");
        for figure in [
            "59.9",
            "44.4",
            "12.35",
            "123456",
            "2.1",
            "0.4",
            "1.3",
            "11.2",
            "14.9/128.0",
            "0.25",
            "1.94",
            "2718",
            "31",
            "EST 123.5",
            "+7.9",
            "+26%",
            "Q40",
        ] {
            assert!(all.contains(figure), "{figure} missing from\n{all}");
        }
        let unsynced = hud_lines(&[e, e], None, None);
        assert!(unsynced[0].contains("NOT SYNCED"));
        assert!(unsynced.join("\n").contains("NO LINK STATUS"));
    }
}
