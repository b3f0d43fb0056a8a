//! Configuration files: a file holds one profile (`config/streamer.yaml`) or named profiles
//! (`config/camera_profiles.yaml`); loading one, selecting the profile to run, the embedded
//! default, and rendering a resolved profile back to YAML.

use std::collections::BTreeMap;
use std::path::Path;

use super::model::StreamerConfig;
use super::schema::{read_profile, ConfigError};
use super::yaml::{self, Checker, MapReader, Value};

/// The configuration embedded in the binary: the synthetic stereo source at 720p60.
pub const EMBEDDED_DEFAULT: &str = include_str!("../../../config/streamer.yaml");
/// The shipped camera profiles (Pi 5 with two IMX708s, USB cameras, ...).
pub const SHIPPED_PROFILES: &str = include_str!("../../../config/camera_profiles.yaml");

/// A file of named profiles (`config/camera_profiles.yaml`).
#[derive(Debug, Clone)]
pub struct Profiles {
    /// The profile used when none is named.
    pub default: String,
    pub profiles: BTreeMap<String, StreamerConfig>,
}

impl Profiles {
    pub fn get(&self, name: Option<&str>) -> Result<&StreamerConfig, String> {
        let name = name.unwrap_or(&self.default);
        self.profiles.get(name).ok_or_else(|| {
            format!(
                "no profile `{name}` (profiles: {})",
                self.profiles.keys().cloned().collect::<Vec<_>>().join(", ")
            )
        })
    }
}

/// What a configuration file holds: one profile, or named profiles.
#[derive(Debug, Clone)]
pub enum ConfigFile {
    Single(Box<StreamerConfig>),
    Profiles(Profiles),
}

impl ConfigFile {
    /// Parses and checks YAML, reporting every problem. `origin` names the file in errors.
    pub fn from_yaml(text: &str, origin: &str) -> Result<Self, ConfigError> {
        let root =
            yaml::parse(text).map_err(|(line, msg)| ConfigError::single(origin, line, "", msg))?;
        // An empty file (or one of comments only) would run the built-in defaults without a
        // word: almost always the wrong file.
        let no_settings = text
            .lines()
            .all(|l| l.trim().is_empty() || l.trim_start().starts_with('#'));
        if no_settings || matches!(root.value, Value::Null) {
            return Err(ConfigError::single(
                origin,
                0,
                "",
                "the file holds no settings (empty, or only comments): give the profile's keys, \
                 as in config/streamer.yaml (`pi-streamer check-config` prints the built-in one)",
            ));
        }
        let mut c = Checker::default();
        let is_profiles = matches!(&root.value, Value::Map(m)
            if m.iter().any(|(k, _)| matches!(&k.value, Value::Str(s) if s == "profiles")));
        let file = if is_profiles {
            let mut m: MapReader = c.map(&root, "").expect("root is a mapping");
            let mut profiles = BTreeMap::new();
            let pnode = m.get("profiles").expect("checked above");
            if let Some(mut pm) = c.map(pnode, "profiles") {
                // `profiles:` with nothing under it reads as an empty mapping (found by the
                // `config` fuzz target: this was an `unreachable!()`).
                let none = Vec::new();
                let entries = match &pnode.value {
                    Value::Map(entries) => entries,
                    _ => &none,
                };
                for (k, _) in entries {
                    let Value::Str(name) = &k.value else {
                        c.problem(k.line, "profiles", "profile names must be strings");
                        continue;
                    };
                    let node = pm.get(name).expect("key from this map");
                    let cfg = read_profile(&mut c, node, &format!("profiles.{name}"));
                    profiles.insert(name.clone(), cfg);
                }
                pm.finish(&mut c, &[]);
            }
            let mut default = String::new();
            m.set(&mut c, "default", &mut default, |c, n, k| {
                c.string(n, k).map(str::to_string)
            });
            if default.is_empty() {
                default = profiles.keys().next().cloned().unwrap_or_default();
            }
            if !profiles.contains_key(&default) {
                c.problem(
                    m.line_of("default"),
                    "default",
                    format!("no profile named `{default}`"),
                );
            }
            if profiles.is_empty() {
                c.problem(m.line_of("profiles"), "profiles", "no profiles defined");
            }
            m.finish(&mut c, &["profiles", "default"]);
            ConfigFile::Profiles(Profiles { default, profiles })
        } else {
            ConfigFile::Single(Box::new(read_profile(&mut c, &root, "")))
        };
        if c.problems.is_empty() {
            Ok(file)
        } else {
            c.problems.sort_by_key(|p| p.line);
            Err(ConfigError {
                origin: origin.to_string(),
                problems: c.problems,
            })
        }
    }

    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError::single(&path.display().to_string(), 0, "", e))?;
        Self::from_yaml(&text, &path.display().to_string())
    }

    /// The profile to run: the single one, or `name` (default: the file's `default`).
    pub fn select(self, name: Option<&str>, origin: &str) -> Result<StreamerConfig, ConfigError> {
        match self {
            ConfigFile::Single(cfg) => match name {
                Some(n) => Err(ConfigError::single(
                    origin,
                    0,
                    "",
                    format!("--profile {n}: this file holds one profile, not named profiles"),
                )),
                None => Ok(*cfg),
            },
            ConfigFile::Profiles(p) => p
                .get(name)
                .cloned()
                .map_err(|e| ConfigError::single(origin, 0, "", e)),
        }
    }
}

impl StreamerConfig {
    /// Parses and checks one profile (a file of named profiles selects its default).
    pub fn from_yaml(text: &str, origin: &str) -> Result<Self, ConfigError> {
        ConfigFile::from_yaml(text, origin)?.select(None, origin)
    }

    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        ConfigFile::load(path)?.select(None, &path.display().to_string())
    }

    /// What this build cannot run although the file is valid (`check-config` refuses it, as
    /// the run would fail at start): (key, line, why).
    pub fn unsupported_here(&self) -> Vec<(String, u64, String)> {
        let mut out = Vec::new();
        for (name, eye) in [("left", &self.eyes.left), ("right", &self.eyes.right)] {
            if matches!(eye.source, super::model::SourceSpec::Libcamera { .. })
                && !cfg!(feature = "libcamera")
            {
                let key = format!("eyes.{name}.source");
                let line = self
                    .lines
                    .iter()
                    .find(|(k, _)| k.ends_with(&key))
                    .map_or(0, |(_, l)| *l);
                out.push((
                    key,
                    line,
                    format!(
                        "`{}` needs a pi-streamer built with libcamera, and this one is not: \
                         on the Pi, `cargo build --release -p pi-streamer --features libcamera`",
                        eye.source
                    ),
                ));
            }
        }
        out
    }

    pub fn embedded() -> Self {
        Self::from_yaml(EMBEDDED_DEFAULT, "embedded config/streamer.yaml")
            .expect("the embedded config is valid")
    }

    /// The embedded configuration at 320x240, 30 fps, `bitrate_mbps` per eye, with a generous
    /// deadline (2 s): what the self-tests stream, about correctness on a machine that may be
    /// busy, not speed.
    pub fn small(bitrate_mbps: f64) -> Self {
        let mut cfg = Self::embedded();
        for eye in shared_proto::Eye::BOTH {
            let e = cfg.eyes.get_mut(eye);
            e.size = super::model::Size {
                width: 320,
                height: 240,
            };
            e.fps = 30.0;
            e.bitrate_mbps = bitrate_mbps;
        }
        cfg.deadlines.max_latency_ms = 2000.0;
        cfg
    }

    /// The resolved configuration as YAML (what `check-config` prints).
    pub fn to_yaml(&self) -> String {
        serde_saphyr::to_string(self).unwrap_or_else(|e| format!("# cannot render: {e}\n"))
    }

    /// [`StreamerConfig::to_yaml`] for a terminal or a log: secrets (the WebRTC token) are
    /// not shown, only that they are set.
    pub fn to_yaml_redacted(&self) -> String {
        let mut shown = self.clone();
        if let Some(t) = &mut shown.transport.webrtc.token {
            *t = format!("<set, not shown: {} characters>", t.chars().count());
        }
        shown.to_yaml()
    }
}
