//! The headset app shell (cargo feature `app`): Bevy + bevy_mod_openxr on top of the Bevy-free
//! receive/decode core (`headset-core`).
//!
//! ```text
//! decoder threads ──PictureSink──▶ Mailbox (newest picture per eye, its Y, U, V planes)
//!        frame loop: upload.rs takes the newest, just before rendering ──▶ the eye's Y, U, V textures
//!        eyes.rs: the left texture on a quad only the left eye's camera sees, the right likewise
//!        after the frame is displayed: upload.rs completes each picture's marker
//!                 (XR: the frame's predicted display time; desktop/offscreen: render done)
//! ```
//! Modes: XR (OpenXR through bevy_mod_openxr), `--desktop` (a window, both eyes side by side),
//! `--offscreen` (no display: each eye view renders into an image that is read back).
//! Each capability is a plugin: [`stream::StreamPlugin`], [`eyes::EyesPlugin`],
//! [`upload::UploadPlugin`], [`hud::HudPlugin`], [`offscreen::OffscreenPlugin`];
//! [`picture::PicturePlugin`] is the quads' material (the three planes sampled, YUV → RGB in
//! the fragment shader, no lighting).
//! On the Quest, `quad_layers::QuadLayersPlugin` takes the pictures off this path: each eye
//! decodes into its own OpenXR quad layer's surface (zero copy).

pub mod config;
mod eyes;
mod font;
pub mod hud;
pub mod mailbox;
pub mod offscreen;
mod picture;
mod quad_layers;
mod stream;
mod upload;
mod xr_input;
pub mod yuv;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Result};
use bevy::app::{PluginGroup, ScheduleRunnerPlugin};
use bevy::prelude::*;
use bevy::window::{ExitCondition, PresentMode, WindowPlugin, WindowResolution};
use bevy_mod_xr::session::XrState;

use binoc_net::Identity;
use headset_core::ClientReport;

pub use config::{ClientConfig, Placement};
pub use offscreen::OffscreenViews;

/// Where the eyes are shown.
#[derive(Debug, Clone, PartialEq)]
pub enum Mode {
    /// OpenXR: each eye's picture in that eye of the headset (or a desktop OpenXR runtime).
    Xr,
    /// A window with both eyes side by side and the HUD.
    Desktop,
    /// No display: each eye view renders into an image that is read back (and optionally
    /// dumped as PNG into `dump`).
    Offscreen { dump: Option<PathBuf> },
}

pub struct AppOptions {
    pub mode: Mode,
    pub listen: SocketAddr,
    pub identity: Identity,
    /// Who may stream, and whether the pairing window is open (its code shows in the HUD).
    pub access: headset_core::Access,
    pub config: ClientConfig,
    /// Stop after this many frames per eye, sessions, or seconds.
    pub frames: Option<u64>,
    pub sessions: Option<u64>,
    pub duration: Option<f64>,
    /// Size of each eye's view in the flat modes (desktop window half, offscreen image).
    pub view_size: (u32, u32),
    /// Desktop: save a screenshot of the window here once the stream shows.
    pub screenshot: Option<PathBuf>,
    /// Log the frame time and each render pass's CPU and GPU time every 2 s.
    pub render_diagnostics: bool,
    /// Told the bound address once listening (tests bind port 0).
    pub on_listening: Option<Box<dyn FnOnce(SocketAddr) + Send>>,
}

/// What a run leaves behind.
pub struct AppOutcome {
    pub report: ClientReport,
    /// Offscreen mode: what each eye's rendered view showed.
    pub views: Option<OffscreenViews>,
}

/// Linux desktop with neither an X11 nor a Wayland display (Android always has its window).
fn no_desktop_display() -> bool {
    cfg!(all(target_os = "linux", not(target_os = "android")))
        && std::env::var_os("DISPLAY").is_none()
        && std::env::var_os("WAYLAND_DISPLAY").is_none()
}

/// Runs the app until the stream ends, the window closes or a limit is reached.
pub fn run(mut opts: AppOptions) -> Result<AppOutcome> {
    opts.config.validate("config")?;
    let (w, h) = opts.view_size;
    if !(16..=8192).contains(&w) || !(16..=8192).contains(&h) {
        bail!("the view size must be within 16x16..8192x8192, got {w}x{h}");
    }
    let stream = stream::Stream::start(&opts)?;
    if let Some(f) = opts.on_listening.take() {
        f(stream.local_addr);
    }
    let views = OffscreenViews::default();

    let mut app = App::new();
    match &opts.mode {
        Mode::Desktop => {
            app.add_plugins(DefaultPlugins.set(WindowPlugin {
                primary_window: Some(Window {
                    title: "binoc".into(),
                    resolution: WindowResolution::new(2 * w, h),
                    // The newest frame is presented at the next refresh, none queued behind it
                    // (no tearing; falls back to immediate, then FIFO, where unsupported).
                    present_mode: PresentMode::Mailbox,
                    ..default()
                }),
                ..default()
            }));
        }
        Mode::Offscreen { .. } => {
            app.add_plugins((
                DefaultPlugins
                    .set(WindowPlugin {
                        primary_window: None,
                        exit_condition: ExitCondition::DontExit,
                        ..default()
                    })
                    .disable::<bevy::winit::WinitPlugin>(),
                // No display to pace the loop: run at most at 90 Hz.
                ScheduleRunnerPlugin::run_loop(Duration::from_secs_f64(1.0 / 90.0)),
            ));
        }
        Mode::Xr => {
            // XR_KHR_convert_timespec_time: the frame's predicted display time is an XrTime,
            // whose epoch is the runtime's own (Monado's is not CLOCK_MONOTONIC's); the
            // markers need it on CLOCK_MONOTONIC (upload.rs). No hand tracking.
            let mut exts = bevy_mod_openxr::exts::OxrExtensions::default();
            exts.khr_convert_timespec_time = true;
            // The Quest: each eye decodes into its own quad layer's surface (quad_layers.rs).
            #[cfg(target_os = "android")]
            {
                exts.khr_android_surface_swapchain = opts.config.layer.zero_copy;
            }
            let plugins = bevy_mod_openxr::add_xr_plugins(
                // Pipelined rendering would show each picture a frame later.
                DefaultPlugins
                    .build()
                    .disable::<bevy::render::pipelined_rendering::PipelinedRenderingPlugin>(),
            )
            .set(bevy_mod_openxr::init::OxrInitPlugin { exts, ..default() });
            if no_desktop_display() {
                // A desktop runtime without a display (Monado's null compositor, a server):
                // winit cannot start, and nothing needs it — xrWaitFrame paces the loop.
                app.add_plugins((
                    plugins
                        .set(WindowPlugin {
                            primary_window: None,
                            exit_condition: ExitCondition::DontExit,
                            ..default()
                        })
                        .disable::<bevy::winit::WinitPlugin>(),
                    ScheduleRunnerPlugin::run_loop(Duration::ZERO),
                ));
            } else {
                app.add_plugins(plugins);
            }
            app.add_plugins(xr_input::XrInputPlugin);
            // The plugins are built: did OpenXR come up?
            if !matches!(
                app.world().get_resource::<XrState>(),
                Some(s) if *s != XrState::Unavailable
            ) {
                stream.join()?;
                bail!(
                    "OpenXR is not available (no runtime, or it has no headset): on a desktop install \
                     an OpenXR runtime such as Monado (README: \"XR on a desktop\"), or use --desktop. \
                     If the log says \"dlopen failed\", the OpenXR loader is missing under the name \
                     libopenxr_loader.so (Debian/Ubuntu: install libopenxr-dev)"
                );
            }
        }
    }
    app.insert_resource(ClearColor(Color::BLACK))
        .add_plugins(picture::PicturePlugin)
        .add_plugins(stream::StreamPlugin {
            shared: stream.shared.clone(),
            mailbox: stream.mailbox.clone(),
            duration: opts.duration,
        })
        .add_plugins(eyes::EyesPlugin {
            mode: opts.mode.clone(),
            layer: opts.config.layer,
            view_size: opts.view_size,
        })
        .add_plugins(upload::UploadPlugin {
            xr: opts.mode == Mode::Xr,
        })
        .add_plugins(hud::HudPlugin {
            visible: opts.config.hud.visible,
            xr: opts.mode == Mode::Xr,
        });
    #[cfg(target_os = "android")]
    if opts.mode == Mode::Xr && opts.config.layer.zero_copy {
        app.add_plugins(quad_layers::QuadLayersPlugin {
            layer: opts.config.layer,
            mailbox: stream.mailbox.clone(),
        });
    }
    if let (Mode::Desktop, Some(path)) = (&opts.mode, &opts.screenshot) {
        app.add_plugins(offscreen::ScreenshotPlugin {
            path: path.clone(),
            // Long enough for the HUD's graph (the last 12 s) to be full.
            after_s: 12.5,
        });
    }
    if opts.render_diagnostics {
        use bevy::diagnostic::{FrameTimeDiagnosticsPlugin, LogDiagnosticsPlugin};
        app.add_plugins((
            FrameTimeDiagnosticsPlugin::default(),
            bevy::render::diagnostic::RenderDiagnosticsPlugin,
            LogDiagnosticsPlugin {
                wait_duration: Duration::from_secs(2),
                ..default()
            },
        ));
    }
    if let Mode::Offscreen { dump } = &opts.mode {
        app.add_plugins(offscreen::OffscreenPlugin {
            views: views.clone(),
            dump: dump.clone(),
        });
    }
    let exit = app.run();
    let report = stream.join()?;
    if let AppExit::Error(code) = exit {
        tracing::warn!("the app exited with code {code}");
    }
    Ok(AppOutcome {
        report,
        views: matches!(opts.mode, Mode::Offscreen { .. }).then_some(views),
    })
}
