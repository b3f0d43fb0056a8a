//! The client's configuration file (`config/quest-client.yaml`): where each eye's picture is
//! placed and whether the HUD shows. Read with the streamer's checker (`binoc-schema`): every
//! problem at once, each naming its key and line, unknown keys with a did-you-mean.

use std::path::Path;

use anyhow::{Context, Result};
use binoc_schema::yaml::{self, Checker};
use binoc_schema::{ConfigError, RealLimit};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Placement {
    /// Follows the head: the picture stays in front of the eyes (FPV goggles).
    Head,
    /// Fixed in the room where the head looked when the stream started (a screen).
    World,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Layer {
    pub placement: Placement,
    /// Distance from the eyes, metres.
    pub distance_m: f32,
    /// Width of the picture, metres; the height follows the stream's aspect ratio.
    pub width_m: f32,
    /// The Quest: decode each eye straight into its own OpenXR quad layer (no copy, the
    /// compositor samples the picture once). `false`: copy each picture into the scene's eye
    /// texture, which also lets the client read each picture's pixel code (the eye check).
    /// Other platforms always copy.
    pub zero_copy: bool,
}

impl Default for Layer {
    fn default() -> Self {
        // 2 m wide at 1.5 m: a 67° horizontal field of view, about a Quest 3's comfortable span.
        Layer {
            placement: Placement::Head,
            distance_m: 1.5,
            width_m: 2.0,
            zero_copy: true,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Hud {
    pub visible: bool,
}

impl Default for Hud {
    fn default() -> Self {
        Hud { visible: true }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct ClientConfig {
    pub layer: Layer,
    pub hud: Hud,
}

/// How far the picture may be, metres.
pub const DISTANCE_M: RealLimit = RealLimit::closed("distance_m", 0.1, 100.0);
/// How wide, metres (and at most 4 × the distance: a wider picture wraps past the view).
pub const WIDTH_M: RealLimit = RealLimit::above("width_m", 0.0, 400.0);
const TOP_KEYS: &[&str] = &["layer", "hud"];
const LAYER_KEYS: &[&str] = &["placement", "distance_m", "width_m", "zero_copy"];
const HUD_KEYS: &[&str] = &["visible"];

impl ClientConfig {
    /// Reads a configuration, reporting every problem with its key and line (the streamer's
    /// checker, `binoc-schema`); an empty file is the defaults.
    pub fn parse(text: &str, origin: &str) -> Result<ClientConfig, ConfigError> {
        let root =
            yaml::parse(text).map_err(|(line, e)| ConfigError::single(origin, line, "", e))?;
        let mut c = Checker::default();
        let mut cfg = ClientConfig::default();
        if let Some(mut top) = c.map(&root, "") {
            if let Some(mut m) = top.get("layer").and_then(|n| c.map(n, "layer")) {
                let l = &mut cfg.layer;
                m.set(&mut c, "placement", &mut l.placement, |c, n, k| {
                    c.choice(
                        n,
                        k,
                        &[("head", Placement::Head), ("world", Placement::World)],
                    )
                });
                m.set(&mut c, "distance_m", &mut l.distance_m, |c, n, k| {
                    c.real_in(n, k, DISTANCE_M).map(|v| v as f32)
                });
                m.set(&mut c, "width_m", &mut l.width_m, |c, n, k| {
                    c.real_in(n, k, WIDTH_M).map(|v| v as f32)
                });
                m.set(&mut c, "zero_copy", &mut l.zero_copy, |c, n, k| {
                    c.boolean(n, k)
                });
                m.finish(&mut c, LAYER_KEYS);
            }
            if let Some(mut m) = top.get("hud").and_then(|n| c.map(n, "hud")) {
                m.set(&mut c, "visible", &mut cfg.hud.visible, |c, n, k| {
                    c.boolean(n, k)
                });
                m.finish(&mut c, HUD_KEYS);
            }
            top.finish(&mut c, TOP_KEYS);
        }
        if !c.problems.is_empty() {
            return Err(ConfigError {
                origin: origin.to_string(),
                problems: c.problems,
            });
        }
        cfg.validate(origin)?;
        Ok(cfg)
    }

    /// Checks a configuration made or changed outside a file (command-line overrides, code)
    /// against the same limits, and the width against the distance.
    pub fn validate(&self, origin: &str) -> Result<(), ConfigError> {
        let l = &self.layer;
        let problem = |key: &str, why: String| ConfigError::single(origin, 0, key, why);
        DISTANCE_M
            .check(l.distance_m.into())
            .map_err(|why| problem("layer.distance_m", why))?;
        WIDTH_M
            .check(l.width_m.into())
            .map_err(|why| problem("layer.width_m", why))?;
        if l.width_m > 4.0 * l.distance_m {
            return Err(problem(
                "layer.width_m",
                format!(
                    "{} m is wider than 4 × distance_m ({} m)",
                    l.width_m,
                    4.0 * l.distance_m
                ),
            ));
        }
        Ok(())
    }

    pub fn load(path: &Path) -> Result<ClientConfig> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        Ok(Self::parse(&text, &path.display().to_string())?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_file_parses() {
        let text = include_str!("../../../config/quest-client.yaml");
        let c = ClientConfig::parse(text, "quest-client.yaml").unwrap();
        assert_eq!(c.layer.placement, Placement::Head);
        assert!(c.layer.zero_copy);
        assert!(c.hud.visible);
    }

    #[test]
    fn empty_is_the_default_and_partial_keeps_defaults() {
        assert_eq!(
            ClientConfig::parse("", "x").unwrap(),
            ClientConfig::default()
        );
        let c = ClientConfig::parse("layer:\n  placement: world\n", "x").unwrap();
        assert_eq!(c.layer.placement, Placement::World);
        assert_eq!(c.layer.distance_m, Layer::default().distance_m);
        assert!(c.layer.zero_copy);
        let c = ClientConfig::parse("layer:\n  zero_copy: false\n", "x").unwrap();
        assert!(!c.layer.zero_copy);
        let e = ClientConfig::parse("layer:\n  zero_copy: maybe\n", "c.yaml")
            .unwrap_err()
            .to_string();
        assert!(e.contains("maybe") && e.contains('2'), "{e}");
    }

    #[test]
    fn errors_name_the_key_and_line() {
        let e = ClientConfig::parse(
            "hud:\n  visible: true\nlayer:\n  placment: world\n",
            "c.yaml",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("placment") && e.contains('4'), "{e}");
        let e = ClientConfig::parse("layer:\n  placement: sideways\n", "c.yaml")
            .unwrap_err()
            .to_string();
        assert!(e.contains("sideways") && e.contains('2'), "{e}");
        let e = ClientConfig::parse("layer:\n  distance_m: -1\n", "c.yaml")
            .unwrap_err()
            .to_string();
        assert!(e.contains("layer.distance_m"), "{e}");
        let e = ClientConfig::parse("layer:\n  distance_m: 1\n  width_m: 9\n", "c.yaml")
            .unwrap_err()
            .to_string();
        assert!(e.contains("layer.width_m"), "{e}");
    }

    #[test]
    fn every_problem_at_once_with_key_and_line_as_the_streamer_reports_them() {
        let e = ClientConfig::parse(
            "layer:\n  placment: world\n  distance_m: 500\nhud:\n  visble: false\n",
            "c.yaml",
        )
        .unwrap_err();
        assert_eq!(e.problems.len(), 3, "{e}");
        let text = e.to_string();
        assert!(
            text.contains("c.yaml:2: `layer.placment`: unknown key")
                && text.contains("did you mean `placement`"),
            "{text}"
        );
        assert!(text.contains("c.yaml:3: `layer.distance_m`: 500"), "{text}");
        assert!(text.contains("c.yaml:5: `hud.visble`"), "{text}");
    }
}
