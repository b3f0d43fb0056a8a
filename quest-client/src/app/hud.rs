//! The HUD: per-eye fps, bitrate, drops and the latency breakdown including glass-to-glass,
//! redrawn four times a second into a texture on a quad both eyes see (bottom left of the
//! picture), above a graph of the last 12 s: one column per redraw, the frames of that quarter
//! second as stacked stage medians, with their glass-to-glass p99 as a tick (where a spike came
//! from, at a glance). `H` toggles it on the desktop; `hud.visible` in the config sets it at
//! start.

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
/// The graph under the text: its height in pixels, and how many redraws it shows.
const GRAPH_H: usize = 96;
const GRAPH_COLUMNS: usize = 48;
const TEXT_H: usize = (LINES + 1) * CELL_H * SCALE + 12;
pub const HUD_PIXELS: (usize, usize) = (COLUMNS * CELL_W * SCALE + 16, TEXT_H + GRAPH_H + 8);
/// The graph's stages, bottom up, and their colours.
const GRAPH_STAGES: [(&str, [u8; 4]); 4] = [
    ("C>HS", [90, 150, 255, 255]),
    ("DEC", [255, 190, 60, 255]),
    ("UPL", [200, 110, 255, 255]),
    ("DISP", [80, 220, 200, 255]),
];
const P99_COLOUR: [u8; 4] = [255, 255, 255, 255];
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

/// The HUD's text; `link`: the streamer's view of the link, when it has said; `pairing`: the
/// pairing code while the headset is pairing (it takes the first line's clock place: no
/// streamer is synced then).
pub fn hud_lines(
    eyes: &[EyeFigures; 2],
    clock_uncertainty_ms: Option<f64>,
    link: Option<LinkStatus>,
    pairing: Option<&str>,
) -> Vec<String> {
    let clock = clock_uncertainty_ms.map_or("CLOCK: NOT SYNCED".to_string(), |u| {
        format!("CLOCK +-{u:.2} MS")
    });
    let first = match pairing {
        Some(code) => format!("BINOC  PAIRING CODE {code}"),
        None => format!("BINOC  H: HIDE   {clock}"),
    };
    let mut out = vec![
        first,
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

/// One column of the graph: a quarter second's frames (both eyes).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct GraphColumn {
    /// Medians, ms: capture → arrived at the headset (capture, encode, network), decode,
    /// upload, display; stacked they are that quarter second's glass-to-glass.
    pub stages_ms: [f64; 4],
    /// Glass-to-glass p99 of the same frames, ms (0: none displayed).
    pub g2g_p99_ms: f64,
}

/// Draws the HUD text on a translucent panel, and the graph of `history` (oldest first)
/// under it.
pub fn draw(lines: &[String], history: &[GraphColumn]) -> Canvas {
    let (w, h) = HUD_PIXELS;
    let mut c = Canvas::new(w, h);
    c.fill([0, 0, 0, 170]);
    for (i, line) in lines.iter().enumerate() {
        c.text(8, 6 + i * CELL_H * SCALE, SCALE, [120, 255, 140, 255], line);
    }
    // The scale: 50 ms, or the tallest column rounded up to 25 ms.
    let tallest = history
        .iter()
        .map(|g| g.stages_ms.iter().sum::<f64>().max(g.g2g_p99_ms))
        .fold(0.0, f64::max);
    let full_ms = (tallest / 25.0).ceil().max(2.0) * 25.0;
    // Legend: the scale, then each stage in its colour.
    let y_legend = 6 + LINES * CELL_H * SCALE;
    let label = format!("{full_ms:.0}MS");
    c.text(8, y_legend, SCALE, [200, 200, 200, 255], &label);
    let mut x = 8 + (label.len() + 1) * CELL_W * SCALE;
    for (name, colour) in GRAPH_STAGES.iter().chain([&("P99", P99_COLOUR)]) {
        c.text(x, y_legend, SCALE, *colour, name);
        x += (name.len() + 1) * CELL_W * SCALE;
    }
    let (x0, y0, gw) = (8, TEXT_H, w - 16);
    let px = |ms: f64| {
        ((ms / full_ms) * GRAPH_H as f64)
            .round()
            .clamp(0.0, GRAPH_H as f64) as usize
    };
    c.rect(x0, y0, gw, 1, [90, 90, 90, 255]);
    c.rect(x0, y0 + GRAPH_H / 2, gw, 1, [60, 60, 60, 255]);
    c.rect(x0, y0 + GRAPH_H, gw, 1, [90, 90, 90, 255]);
    let col_w = gw / GRAPH_COLUMNS;
    // The newest column at the right.
    let first = GRAPH_COLUMNS.saturating_sub(history.len());
    for (i, g) in history.iter().rev().take(GRAPH_COLUMNS).rev().enumerate() {
        let cx = x0 + (first + i) * col_w;
        let mut top = 0.0;
        for (ms, (_, colour)) in g.stages_ms.iter().zip(GRAPH_STAGES) {
            let (a, b) = (px(top), px(top + ms.max(0.0)));
            c.rect(cx, y0 + GRAPH_H - b, col_w.saturating_sub(1), b - a, colour);
            top += ms.max(0.0);
        }
        if g.g2g_p99_ms > 0.0 {
            let y = y0 + GRAPH_H - px(g.g2g_p99_ms);
            c.rect(
                cx,
                y.saturating_sub(1),
                col_w.saturating_sub(1),
                2,
                P99_COLOUR,
            );
        }
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
    history: std::collections::VecDeque<GraphColumn>,
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
    let canvas = draw(&hud_lines(&Default::default(), None, None, None), &[]);
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
        history: Default::default(),
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

/// The figures of one eye from the core's statistics, and its graph column (the frames since
/// the last redraw); `prev` holds (decoded, shown, bytes) at the previous redraw, `dt` the
/// seconds since.
fn figures(
    shared: &Shared,
    eye: Eye,
    prev: &mut (u64, u64, u64),
    dt: f64,
) -> (EyeFigures, GraphColumn) {
    let s = shared.eyes[eye.index()]
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    let (decoded, shown, bytes) = (s.counts.decoded, s.counts.shown, s.counts.bytes);
    let (new_decoded, new_shown) = (
        decoded.saturating_sub(prev.0) as usize,
        shown.saturating_sub(prev.1) as usize,
    );
    let window = |series: &Series, n: usize| {
        if n == 0 {
            Default::default()
        } else {
            series.summary_recent(n)
        }
    };
    let decode = window(&s.decode, new_decoded).p50;
    let column = GraphColumn {
        stages_ms: [
            (window(&s.latency, new_decoded).p50 - decode).max(0.0),
            decode,
            window(&s.upload, new_shown).p50,
            window(&s.display, new_shown).p50,
        ],
        g2g_p99_ms: window(&s.glass_to_glass, new_shown).p99,
    };
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
    (f, column)
}

/// Both eyes in one column: the mean of their stage medians (an eye without frames in that
/// quarter second does not halve the other's), the worse p99.
fn merge(l: GraphColumn, r: GraphColumn) -> GraphColumn {
    let empty = |g: &GraphColumn| g.stages_ms.iter().all(|&v| v == 0.0);
    let mut column = match (empty(&l), empty(&r)) {
        (true, _) => r,
        (_, true) => l,
        _ => {
            let mut c = l;
            for (a, b) in c.stages_ms.iter_mut().zip(r.stages_ms) {
                *a = (*a + b) / 2.0;
            }
            c
        }
    };
    column.g2g_p99_ms = l.g2g_p99_ms.max(r.g2g_p99_ms);
    column
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
    let [(l, lg), (r, rg)] =
        Eye::BOTH.map(|eye| figures(&state.shared, eye, &mut hud.prev[eye.index()], dt));
    let eyes = [l, r];
    hud.history.push_back(merge(lg, rg));
    while hud.history.len() > GRAPH_COLUMNS {
        hud.history.pop_front();
    }
    let clock = state
        .shared
        .clock
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .map(|c| c.uncertainty_ns() as f64 / 1e6);
    let history: Vec<GraphColumn> = hud.history.iter().copied().collect();
    let pairing = state.shared.pairing_code.borrow().clone();
    let canvas = draw(
        &hud_lines(&eyes, clock, state.shared.link(), pairing.as_deref()),
        &history,
    );
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
        let lines = hud_lines(&[e, e], Some(0.25), Some(link), None);
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
        // The graph: a column per redraw, stacked stages and the p99 tick, on any history.
        let col = |total: f64| GraphColumn {
            stages_ms: [total * 0.6, total * 0.1, total * 0.1, total * 0.2],
            g2g_p99_ms: total * 1.5,
        };
        let empty = draw(&lines, &[]);
        let history: Vec<GraphColumn> = (0..100).map(|i| col(10.0 + i as f64)).collect();
        let full = draw(&lines, &history);
        assert_eq!(full.rgba.len(), HUD_PIXELS.0 * HUD_PIXELS.1 * 4);
        let count =
            |c: &Canvas, colour: [u8; 4]| c.rgba.chunks_exact(4).filter(|p| *p == colour).count();
        for (name, colour) in GRAPH_STAGES {
            assert!(
                count(&full, colour) > count(&empty, colour),
                "{name} not drawn"
            );
        }
        assert!(count(&full, P99_COLOUR) > count(&empty, P99_COLOUR));
        // A spike raises the scale (its label) and its tick is drawn.
        let spike = draw(&lines, &[col(10.0), col(400.0), GraphColumn::default()]);
        assert!(count(&spike, P99_COLOUR) > count(&empty, P99_COLOUR));
        assert_ne!(spike.rgba, draw(&lines, &[col(10.0), col(20.0)]).rgba);
        // Merging the eyes: an eye without frames does not halve the other.
        let m = merge(col(10.0), GraphColumn::default());
        assert_eq!(m.stages_ms, col(10.0).stages_ms);
        let m = merge(col(10.0), col(30.0));
        assert_eq!((m.stages_ms[0], m.g2g_p99_ms), (12.0, 45.0));
        let unsynced = hud_lines(&[e, e], None, None, None);
        assert!(unsynced[0].contains("NOT SYNCED"));
        assert!(unsynced.join("\n").contains("NO LINK STATUS"));
        // While pairing, the code is on the first line, and it is drawn (the font has digits).
        let pairing = hud_lines(&[e, e], None, None, Some("012345"));
        assert_eq!(pairing[0], "BINOC  PAIRING CODE 012345");
        assert_eq!(pairing.len(), LINES);
        assert_ne!(draw(&pairing, &[]).rgba, draw(&unsynced, &[]).rgba);
    }
}
