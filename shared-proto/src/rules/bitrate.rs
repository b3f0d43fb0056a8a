//! Many receivers, one encoder per eye: each receiver with a bandwidth estimate wishes for a
//! bitrate; the encoders follow the lowest wish, except wishes below the floor (those receivers
//! lose frames from their own [`super::budget::Budget`] instead of dragging every receiver's
//! picture down to the floor).

/// The bounds of one eye's bitrate.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EyeBounds {
    pub min_bps: f64,
    pub max_bps: f64,
}

/// Share of a link estimate given to video: headroom for retransmissions, packet overhead and
/// the estimate's own error.
pub const HEADROOM: f64 = 0.85;

/// The bitrate for one eye given a link estimate shared by both eyes: [`HEADROOM`] of the
/// estimate, split in two, within the bounds.
pub fn eye_share(bounds: EyeBounds, estimate_bps: u64) -> u32 {
    let min = bounds.min_bps.min(bounds.max_bps);
    (estimate_bps as f64 * HEADROOM / 2.0).clamp(min, bounds.max_bps) as u32
}

/// The link estimate at which both eyes get `eye_bps` each (where an estimator should start so
/// that the configured bitrate is its first target).
pub fn estimate_for(eye_bps: [f64; 2]) -> u64 {
    ((eye_bps[0] + eye_bps[1]) / HEADROOM) as u64
}

/// One eye's bitrate from every receiver's estimate; `None` with no estimate (the configured
/// bitrate stays).
pub fn target(bounds: EyeBounds, estimates: &[u64]) -> Option<u32> {
    let floor = eye_share(bounds, 0);
    let above = estimates
        .iter()
        .map(|&e| eye_share(bounds, e))
        .filter(|&t| t > floor)
        .min();
    match above {
        Some(t) => Some(t),
        None if estimates.is_empty() => None,
        None => Some(floor),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bitrate_follows_the_lowest_estimate_within_bounds() {
        let b = EyeBounds {
            min_bps: 1e6,
            max_bps: 8e6,
        };
        assert_eq!(target(b, &[]), None, "no estimate: as configured");
        assert_eq!(
            target(b, &[10_000_000]),
            Some(4_250_000),
            "85 % of the link, split between the eyes"
        );
        assert_eq!(
            target(b, &[10_000_000, 100_000_000]),
            Some(4_250_000),
            "the lowest decides"
        );
        assert_eq!(
            target(b, &[1_000_000, 100_000_000]),
            Some(8_000_000),
            "a receiver below the floor does not decide"
        );
        assert_eq!(
            target(b, &[1_000_000, 500_000]),
            Some(1_000_000),
            "everyone below the floor: the floor"
        );
        assert_eq!(
            target(b, &[100_000_000]),
            Some(8_000_000),
            "never above the max"
        );
        assert_eq!(
            eye_share(b, estimate_for([8e6, 8e6])),
            8_000_000 - 1,
            "the estimator's start gives the configured rate (to the bit, rounding down)"
        );
    }
}
