//! The client's configuration file (`config/quest-client.yaml`): where each eye's picture is
//! placed and whether the HUD shows. Bad values are errors naming the key and line.

use std::path::Path;

use anyhow::{bail, Context, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Placement {
    /// Follows the head: the picture stays in front of the eyes (FPV goggles).
    Head,
    /// Fixed in the room where the head looked when the stream started (a screen).
    World,
}

#[derive(Debug, Clone, Copy, PartialEq, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
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

#[derive(Debug, Clone, Copy, PartialEq, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Hud {
    pub visible: bool,
}

impl Default for Hud {
    fn default() -> Self {
        Hud { visible: true }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Default, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClientConfig {
    pub layer: Layer,
    pub hud: Hud,
}

impl ClientConfig {
    pub fn parse(text: &str, origin: &str) -> Result<ClientConfig> {
        let c: ClientConfig = if text.trim().is_empty() {
            ClientConfig::default()
        } else {
            serde_saphyr::from_str(text).map_err(|e| anyhow::anyhow!("{origin}: {e}"))?
        };
        c.validate(origin)?;
        Ok(c)
    }

    pub fn load(path: &Path) -> Result<ClientConfig> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        Self::parse(&text, &path.display().to_string())
    }

    pub fn validate(&self, origin: &str) -> Result<()> {
        let l = &self.layer;
        if !(l.distance_m.is_finite() && (0.1..=100.0).contains(&l.distance_m)) {
            bail!(
                "{origin}: layer.distance_m must be within 0.1..=100 metres, got {}",
                l.distance_m
            );
        }
        if !(l.width_m.is_finite() && l.width_m > 0.0 && l.width_m <= 4.0 * l.distance_m) {
            bail!(
                "{origin}: layer.width_m must be above 0 and at most 4 × distance_m ({} m), got {}",
                4.0 * l.distance_m,
                l.width_m
            );
        }
        Ok(())
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
}
