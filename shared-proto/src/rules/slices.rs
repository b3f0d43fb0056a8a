//! A receiver's view of pictures sent in slices: each slice is a transport unit with its own
//! sequence number, a picture's slices consecutive and in picture order ([`SliceOf`]). Units
//! reach the decoder in sequence order with gaps where units were lost; this counts the
//! *pictures* those gaps cost (each once), so loss accounting stays per picture whatever the
//! slicing. The reference chain itself runs per unit ([`super::refchain`]): any gap waits for
//! the first slice of an IDR.

use crate::wire::SliceOf;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Seen {
    seq: u32,
    slice: SliceOf,
}

/// Counts the pictures lost in gaps of a unit sequence.
#[derive(Debug, Clone, Default)]
pub struct PictureTracker {
    last: Option<Seen>,
    /// The first unit's sequence number of the picture already counted lost.
    counted: Option<u32>,
}

impl PictureTracker {
    pub fn new() -> Self {
        Self::default()
    }

    /// Unit `seq`, slice `slice` of its picture, reached the decoder. Returns the pictures
    /// newly known lost (the current one included if it lacks an earlier slice).
    pub fn on_unit(&mut self, seq: u32, slice: SliceOf) -> u32 {
        let start = seq.wrapping_sub(u32::from(slice.index));
        let mut lost = 0u32;
        match self.last {
            None => {
                if slice.index > 0 {
                    lost += self.count_once(start);
                }
            }
            Some(prev) => {
                let gap = seq.wrapping_sub(prev.seq).wrapping_sub(1);
                if gap >= 1 << 31 {
                    // Not newer than the last unit (a duplicate or a late one): nothing new.
                    return 0;
                }
                let prev_start = prev.seq.wrapping_sub(u32::from(prev.slice.index));
                let same_picture = !prev.slice.is_last() && prev_start == start;
                if gap > 0 || (!prev.slice.is_last() && !same_picture) {
                    // Units are missing (or the last picture broke off): the pictures they
                    // belonged to are lost.
                    let mut rest = u64::from(gap);
                    if !prev.slice.is_last() {
                        lost += self.count_once(prev_start);
                        let tail = u64::from(prev.slice.count - 1 - prev.slice.index);
                        rest = rest.saturating_sub(tail);
                    }
                    if !same_picture {
                        if slice.index > 0 {
                            lost += self.count_once(start);
                            rest = rest.saturating_sub(u64::from(slice.index));
                        }
                        // Whole pictures in between (as many slices as this one's picture).
                        let between = rest.div_ceil(u64::from(slice.count.max(1)));
                        lost = lost.saturating_add(between.min(u64::from(u32::MAX)) as u32);
                    }
                } else if !same_picture && slice.index > 0 {
                    // In sequence, yet not the picture's next slice: a sender that lies.
                    lost += self.count_once(start);
                }
            }
        }
        self.last = Some(Seen { seq, slice });
        lost
    }

    fn count_once(&mut self, start: u32) -> u32 {
        if self.counted == Some(start) {
            return 0;
        }
        self.counted = Some(start);
        1
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn s(index: u8, count: u8) -> SliceOf {
        SliceOf::of(index, count)
    }

    /// Units of `pictures` pictures of `count` slices, seq from `base`.
    fn units(base: u32, pictures: u32, count: u8) -> Vec<(u32, SliceOf)> {
        (0..pictures * u32::from(count))
            .map(|i| (base.wrapping_add(i), s((i % u32::from(count)) as u8, count)))
            .collect()
    }

    #[test]
    fn whole_pictures_count_their_gaps() {
        let mut t = PictureTracker::new();
        assert_eq!(t.on_unit(0, SliceOf::WHOLE), 0);
        assert_eq!(t.on_unit(1, SliceOf::WHOLE), 0);
        assert_eq!(t.on_unit(4, SliceOf::WHOLE), 2);
        assert_eq!(t.on_unit(3, SliceOf::WHOLE), 0, "late: nothing new");
    }

    #[test]
    fn a_lost_slice_costs_its_picture_once() {
        let mut t = PictureTracker::new();
        // Picture A = 0..4, B = 4..8; B's slice 1 (seq 5) is lost.
        for seq in 0..4 {
            assert_eq!(t.on_unit(seq, s(seq as u8, 4)), 0);
        }
        assert_eq!(t.on_unit(4, s(0, 4)), 0);
        assert_eq!(t.on_unit(6, s(2, 4)), 1, "B lost");
        assert_eq!(t.on_unit(7, s(3, 4)), 0, "B not counted twice");
        assert_eq!(t.on_unit(8, s(0, 4)), 0);
        // C = 8..12 loses its last two slices and D = 12..16 its first: both lost.
        assert_eq!(t.on_unit(9, s(1, 4)), 0);
        assert_eq!(t.on_unit(13, s(1, 4)), 2);
        // E = 16..20 and F = 20..24 vanish whole; G = 24.. arrives.
        assert_eq!(t.on_unit(14, s(2, 4)), 0);
        assert_eq!(t.on_unit(15, s(3, 4)), 0);
        assert_eq!(t.on_unit(24, s(0, 4)), 2);
    }

    #[test]
    fn the_first_unit_seen_mid_picture_is_a_lost_picture() {
        let mut t = PictureTracker::new();
        assert_eq!(t.on_unit(10, s(2, 4)), 1);
        assert_eq!(t.on_unit(11, s(3, 4)), 0);
        assert_eq!(t.on_unit(12, s(0, 4)), 0);
    }

    proptest! {
        /// Dropping any set of units loses exactly the pictures that had one dropped (with the
        /// pictures' slice count constant), across the sequence numbers' wrap.
        #[test]
        fn counts_exactly_the_pictures_with_a_missing_unit(
            base in any::<u32>(),
            count in 1u8..8,
            pictures in 1u32..30,
            drops in proptest::collection::vec(any::<bool>(), 240),
        ) {
            let all = units(base, pictures, count);
            let mut t = PictureTracker::new();
            let mut lost = 0u32;
            // Each damaged picture's first dropped unit.
            let mut damaged = std::collections::BTreeMap::new();
            let mut last_kept = None;
            for (i, &(seq, slice)) in all.iter().enumerate() {
                if drops[i % drops.len()] && i % 3 != 0 {
                    damaged.entry(i / usize::from(count)).or_insert(i);
                    continue;
                }
                last_kept = Some(i);
                lost += t.on_unit(seq, slice);
            }
            // A loss is only known once a later unit comes.
            let expected = damaged
                .values()
                .filter(|&&first| last_kept.is_some_and(|k| k > first))
                .count() as u32;
            prop_assert_eq!(lost, expected);
        }
    }
}
