//! The range of one setting, with the command-line flag that overrides it (if any): one
//! declaration serves the YAML walk and the command line.

/// The range of a whole-number setting: `min..=max`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IntLimit {
    /// The key in its mapping (for crop, offset: the setting whose parts it bounds).
    pub key: &'static str,
    pub min: i64,
    pub max: i64,
    /// The long command-line flag that overrides this key, without the dashes.
    pub flag: Option<&'static str>,
}

impl IntLimit {
    pub const fn new(key: &'static str, min: i64, max: i64) -> Self {
        IntLimit {
            key,
            min,
            max,
            flag: None,
        }
    }

    /// The same limit, overridden by `--flag`.
    pub const fn with_flag(self, flag: &'static str) -> Self {
        IntLimit {
            flag: Some(flag),
            ..self
        }
    }

    /// The flag's name, for declaring it (panics for a limit without one: a programming error).
    pub const fn long(&self) -> &'static str {
        flag_name(self.flag)
    }

    pub fn contains(&self, v: i64) -> bool {
        (self.min..=self.max).contains(&v)
    }

    /// `v`, or why it is out of range.
    pub fn check(&self, v: i64) -> Result<i64, String> {
        if self.contains(v) {
            Ok(v)
        } else {
            Err(format!("{v} outside {}..{}", self.min, self.max))
        }
    }
}

/// A limit's flag for clap (`#[arg(long = …)]`, evaluated at compile time).
const fn flag_name(flag: Option<&'static str>) -> &'static str {
    match flag {
        Some(f) => f,
        None => panic!("this limit has no command-line flag"),
    }
}

/// The range of a real-number setting: `min..=max`, or above `min` up to `max`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RealLimit {
    /// The key in its mapping (for colour_gains: the setting whose parts it bounds).
    pub key: &'static str,
    pub min: f64,
    /// Strictly above `min` (`min` itself is refused).
    pub above_min: bool,
    pub max: f64,
    /// The long command-line flag that overrides this key, without the dashes.
    pub flag: Option<&'static str>,
}

impl RealLimit {
    /// `min ≤ v ≤ max`.
    pub const fn closed(key: &'static str, min: f64, max: f64) -> Self {
        RealLimit {
            key,
            min,
            above_min: false,
            max,
            flag: None,
        }
    }

    /// `min < v ≤ max`.
    pub const fn above(key: &'static str, min: f64, max: f64) -> Self {
        RealLimit {
            above_min: true,
            ..Self::closed(key, min, max)
        }
    }

    /// The same limit, overridden by `--flag`.
    pub const fn with_flag(self, flag: &'static str) -> Self {
        RealLimit {
            flag: Some(flag),
            ..self
        }
    }

    /// The flag's name, for declaring it (panics for a limit without one: a programming error).
    pub const fn long(&self) -> &'static str {
        flag_name(self.flag)
    }

    pub fn contains(&self, v: f64) -> bool {
        let above = if self.above_min {
            v > self.min
        } else {
            v >= self.min
        };
        above && v <= self.max
    }

    /// `v`, or why it is out of range (NaN never is in range).
    pub fn check(&self, v: f64) -> Result<f64, String> {
        if self.contains(v) {
            Ok(v)
        } else {
            let lo = if self.above_min { ">" } else { "≥" };
            Err(format!("{v} must be {lo} {} and ≤ {}", self.min, self.max))
        }
    }
}
