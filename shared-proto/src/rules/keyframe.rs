//! The encoder's keyframe policy: requests (from any receiver) are merged, and honoured at most
//! once per minimum interval, so a receiver in trouble cannot fill every stream with IDRs.

use crate::Nanos;

/// Whether a pending keyframe request is honoured at `now`, given when the encoder last made
/// a keyframe (`None`: never). A request that is not honoured yet stays pending.
pub fn honour_request(now: Nanos, last_keyframe: Option<Nanos>, min_interval_ns: Nanos) -> bool {
    last_keyframe.is_none_or(|t| now.saturating_sub(t) >= min_interval_ns)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_wait_out_the_minimum_interval() {
        assert!(
            honour_request(1000, None, 100),
            "the first keyframe at once"
        );
        assert!(!honour_request(1000, Some(950), 100), "too soon");
        assert!(
            honour_request(1050, Some(950), 100),
            "once the interval passed"
        );
        assert!(honour_request(10, Some(950), 0), "no interval: always");
    }
}
