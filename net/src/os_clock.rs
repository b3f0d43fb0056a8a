//! The one place binoc reads the OS clocks (the streamer and the headset alike): the
//! monotonic and CPU clocks for measuring, and the wall clock only for what people read or
//! what must expire across restarts (dates in the paired lists, browser invitations).

fn read(clock: libc::clockid_t) -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes into the timespec we own; the clocks used here always exist.
    unsafe { libc::clock_gettime(clock, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// Nanoseconds on `CLOCK_MONOTONIC`: the clock V4L2 and libcamera stamp sensor buffers with,
/// shared by every process on one machine, never stepped by NTP.
pub fn monotonic_ns() -> u64 {
    read(libc::CLOCK_MONOTONIC)
}

/// CPU time consumed by this process so far (user + system), in nanoseconds.
pub fn process_cpu_ns() -> u64 {
    read(libc::CLOCK_PROCESS_CPUTIME_ID)
}

/// CPU time consumed by the calling thread so far, in nanoseconds.
pub fn thread_cpu_ns() -> u64 {
    read(libc::CLOCK_THREAD_CPUTIME_ID)
}

/// The machine's CPU time so far, all CPUs (`/proc/stat`'s `cpu` line, in clock ticks).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MachineCpu {
    /// user + nice + system + irq + softirq + steal.
    pub wanted: u64,
    /// Time the hypervisor ran other guests while this one's CPUs wanted to run (0 on bare
    /// metal): on a VM, what no process here can see in its own CPU time but every deadline
    /// feels.
    pub steal: u64,
}

impl MachineCpu {
    /// Parses `/proc/stat`'s text; `None` without a well-formed `cpu` line.
    pub fn parse(stat: &str) -> Option<MachineCpu> {
        let line = stat.lines().find(|l| l.starts_with("cpu "))?;
        let v: Vec<u64> = line
            .split_whitespace()
            .skip(1)
            .map(|x| x.parse().ok())
            .collect::<Option<_>>()?;
        // user nice system idle iowait irq softirq steal …
        let field = |i: usize| v.get(i).copied();
        let steal = field(7)?;
        let busy = [0, 1, 2, 5, 6]
            .iter()
            .try_fold(0u64, |s, &i| Some(s.saturating_add(field(i)?)))?;
        Some(MachineCpu {
            wanted: busy.saturating_add(steal),
            steal,
        })
    }

    /// Of the CPU time wanted since `before`, the share stolen, in percent (`None` if no time
    /// passed or the counters went back).
    pub fn steal_percent_since(&self, before: &MachineCpu) -> Option<f64> {
        let wanted = self.wanted.checked_sub(before.wanted)?;
        let steal = self.steal.checked_sub(before.steal)?;
        (wanted > 0).then(|| 100.0 * steal as f64 / wanted as f64)
    }

    /// The steal share from these counters to now ([`machine_cpu`]).
    pub fn steal_percent_to_now(&self) -> Option<f64> {
        machine_cpu()?.steal_percent_since(self)
    }
}

/// The machine's CPU counters now (`None` where `/proc/stat` cannot be read: not Linux).
pub fn machine_cpu() -> Option<MachineCpu> {
    MachineCpu::parse(&std::fs::read_to_string("/proc/stat").ok()?)
}

/// Seconds since the Unix epoch on the wall clock (0 if it is set before 1970).
pub fn unix_s() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Now in UTC as `YYYY-MM-DD HH:MM UTC` (for the notes in the paired lists).
pub fn utc_now() -> String {
    utc_text(unix_s())
}

/// `unix_s` (seconds since the Unix epoch) in UTC as `YYYY-MM-DD HH:MM UTC`.
pub fn utc_text(unix_s: u64) -> String {
    let secs = unix_s.min(i64::MAX as u64 / 2) as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil date from days since 1970-01-01 (H. Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02} UTC",
        rem / 3600,
        rem % 3600 / 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steal_is_read_from_proc_stat_and_taken_as_a_share_of_the_wanted_time() {
        let a = MachineCpu::parse("cpu  100 10 50 900 5 0 40 0 0 0\ncpu0 1 2 3\n").unwrap();
        let b = MachineCpu::parse("cpu  160 10 70 990 5 0 50 10 0 0\n").unwrap();
        assert_eq!(
            a,
            MachineCpu {
                wanted: 200,
                steal: 0
            }
        );
        // 90 ticks wanted since a (60 user, 20 system, 10 softirq) plus 10 stolen.
        assert_eq!(b.steal_percent_since(&a), Some(10.0));
        assert_eq!(a.steal_percent_since(&b), None);
        assert_eq!(a.steal_percent_since(&a), None);
        // Old kernels without a steal field, garbage, no cpu line.
        for bad in [
            "cpu  1 2 3 4 5 6 7\n",
            "cpu  a b c d e f g h\n",
            "intr 1 2\n",
            "",
        ] {
            assert_eq!(MachineCpu::parse(bad), None, "{bad:?}");
        }
        // Here, on Linux: readable.
        assert!(machine_cpu().is_some());
    }

    #[test]
    fn the_date_is_a_date() {
        let s = super::utc_now();
        assert_eq!(s.len(), 20, "{s}");
        assert_eq!(super::utc_text(0), "1970-01-01 00:00 UTC");
        assert_eq!(super::utc_text(1_765_000_000), "2025-12-06 05:46 UTC");
        assert!(s.starts_with("20") && s.ends_with(" UTC"), "{s}");
    }
}
