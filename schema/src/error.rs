//! Every problem found in one configuration, shown one per line as `origin:line: `key`: what`.

use std::fmt;

use crate::yaml::Problem;

/// Every problem found in one configuration.
#[derive(Debug)]
pub struct ConfigError {
    pub origin: String,
    pub problems: Vec<Problem>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.problems.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            if p.line > 0 {
                write!(f, "{}:{}: ", self.origin, p.line)?;
            } else {
                write!(f, "{}: ", self.origin)?;
            }
            if p.key.is_empty() {
                write!(f, "{}", p.message)?;
            } else {
                write!(f, "`{}`: {}", p.key, p.message)?;
            }
        }
        Ok(())
    }
}

impl ConfigError {
    pub fn single(origin: &str, line: u64, key: &str, message: impl fmt::Display) -> Self {
        ConfigError {
            origin: origin.to_string(),
            problems: vec![Problem {
                line,
                key: key.to_string(),
                message: message.to_string(),
            }],
        }
    }
}

impl std::error::Error for ConfigError {}
