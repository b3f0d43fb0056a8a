//! Scheduling hints for binoc's short, latency-critical threads (the network runtimes, the
//! streamer's fan-out and sender, the capture hand-over).
//!
//! These threads wake for tens of microseconds per frame, but they wake while the encoders
//! (and, in the loopback, the decoders) keep every core busy for milliseconds. Linux's EEVDF
//! scheduler (6.6+) lets a running thread finish its time slice before a woken one of equal
//! weight takes the core, so a woken sender waited up to a slice: 1–3 ms measured at
//! 2×1280x720@60 on two cores (docs/performance.md). Since Linux 6.12 a thread may ask for a
//! shorter slice (`sched_attr.sched_runtime` under `SCHED_OTHER`, no privilege needed): its
//! deadline comes sooner, so it takes a core from a long-running thread when it wakes, and it
//! gives the core back sooner too, so nothing it does can starve the encoders (a flood of
//! datagrams on a short-slice runtime is still shared fairly). Nothing changes in priority or
//! share of CPU, and no real-time class is used.
//!
//! Older kernels ignore the request; other systems have no such call. Either way the thread
//! runs as before, and [`short_slice`] says so.

/// The slice asked for: the shortest Linux grants (0.1 ms).
pub const SHORT_SLICE_NS: u64 = 100_000;

/// What became of a request for a short time slice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SliceHint {
    /// The kernel took it: the calling thread now runs with this slice (ns).
    Granted(u64),
    /// The kernel or the system has no per-thread slice (Linux before 6.12, Android's kernels,
    /// other systems), or the thread is not under the normal policy: nothing changed.
    Unsupported,
}

/// Asks for a short time slice for the calling thread (see the module's documentation). The
/// thread's policy and nice value are kept; a thread under another policy is left alone.
pub fn short_slice() -> SliceHint {
    let hint = imp::set_slice(SHORT_SLICE_NS);
    tracing::debug!(
        thread = std::thread::current().name().unwrap_or("?"),
        ?hint,
        "short scheduling slice"
    );
    hint
}

/// Gives the calling thread the kernel's default slice back. A thread inherits its creator's
/// slice, so a codec thread started from a short-slice thread (a decoder from a network
/// worker) would otherwise run with 0.1 ms slices too: it would no longer let the short
/// threads in first, and it would switch ten times as often. (The decoders had inherited
/// them; at 2×1280x720@60 putting that right changed no latency figure beyond the machine's
/// spread: docs/performance.md.) For the same reason only threads that start no others ask for
/// a short slice. Unsupported where [`short_slice`] is.
pub fn default_slice() -> SliceHint {
    imp::reset_slice()
}

/// The tokio runtime binoc's network IO runs on, at both ends: two workers, each with a short
/// slice ([`short_slice`]), IO and timers enabled. Callers may name its threads before
/// `build()`.
pub fn runtime_builder() -> tokio::runtime::Builder {
    let mut b = tokio::runtime::Builder::new_multi_thread();
    b.worker_threads(2)
        .on_thread_start(|| {
            short_slice();
        })
        .enable_all();
    b
}

/// The calling thread's time slice as the kernel reports it (Linux 6.12+: the default slice,
/// or the one asked for), for tests and diagnostics.
pub fn current_slice() -> Option<u64> {
    imp::get()
        .filter(|a| a.sched_runtime != 0)
        .map(|a| a.sched_runtime)
}

#[cfg(target_os = "linux")]
mod imp {
    use super::SliceHint;

    /// The kernel's `struct sched_attr` up to `SCHED_ATTR_SIZE_VER1` (with the utilisation
    /// clamps), which every kernel since 5.3 accepts.
    #[repr(C)]
    #[derive(Default, Clone, Copy)]
    pub struct SchedAttr {
        size: u32,
        sched_policy: u32,
        sched_flags: u64,
        sched_nice: i32,
        sched_priority: u32,
        pub sched_runtime: u64,
        sched_deadline: u64,
        sched_period: u64,
        util_min: u32,
        util_max: u32,
    }

    pub fn get() -> Option<SchedAttr> {
        let mut a = SchedAttr::default();
        let size = std::mem::size_of::<SchedAttr>() as libc::c_uint;
        // SAFETY: sched_getattr writes at most `size` bytes into the struct we own (pid 0: the
        // calling thread).
        let r = unsafe {
            libc::syscall(
                libc::SYS_sched_getattr,
                0,
                &mut a as *mut SchedAttr,
                size,
                0,
            )
        };
        (r == 0).then_some(a)
    }

    /// Sets the calling thread's attributes; false if the kernel refused them.
    pub fn set(mut a: SchedAttr) -> bool {
        a.size = std::mem::size_of::<SchedAttr>() as u32;
        // SAFETY: sched_setattr reads the struct we own (pid 0: the calling thread).
        unsafe { libc::syscall(libc::SYS_sched_setattr, 0, &a as *const SchedAttr, 0) == 0 }
    }

    /// Asks for `ns` of slice (0: the kernel's default) for a thread under the normal policy,
    /// keeping its policy and nice value; the slice the kernel then reports (kernels before
    /// 6.12 accept the call, ignore the runtime of a normal thread and report 0; later ones
    /// report the thread's slice, the default one after a 0).
    fn ask(ns: u64) -> Option<u64> {
        let mut a = get()?;
        if a.sched_policy != libc::SCHED_OTHER as u32 {
            return None;
        }
        a.sched_flags = 0;
        a.sched_runtime = ns;
        set(a).then(get).flatten().map(|b| b.sched_runtime)
    }

    pub fn set_slice(ns: u64) -> SliceHint {
        match ask(ns) {
            Some(r) if r == ns => SliceHint::Granted(ns),
            _ => SliceHint::Unsupported,
        }
    }

    pub fn reset_slice() -> SliceHint {
        match ask(0) {
            Some(r) if r > 0 => SliceHint::Granted(r),
            _ => SliceHint::Unsupported,
        }
    }
}

#[cfg(not(target_os = "linux"))]
mod imp {
    use super::SliceHint;

    pub struct SchedAttr {
        pub sched_runtime: u64,
    }

    pub fn get() -> Option<SchedAttr> {
        None
    }

    pub fn set_slice(_ns: u64) -> SliceHint {
        SliceHint::Unsupported
    }

    pub fn reset_slice() -> SliceHint {
        SliceHint::Unsupported
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The kernel's release as (major, minor), from /proc/sys/kernel/osrelease.
    #[cfg(target_os = "linux")]
    fn kernel() -> (u32, u32) {
        let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap();
        let mut parts = release
            .trim()
            .split(|c: char| !c.is_ascii_digit())
            .map(|p| p.parse::<u32>().unwrap_or(0));
        (parts.next().unwrap_or(0), parts.next().unwrap_or(0))
    }

    /// Whether this kernel has per-thread slices and lets this process set them: where a
    /// seccomp filter refuses sched_getattr or sched_setattr (tried here with the thread's own
    /// attributes, which changes nothing), nothing can be asked either.
    #[cfg(target_os = "linux")]
    fn slices_supported() -> bool {
        kernel() >= (6, 12) && imp::get().is_some_and(imp::set)
    }

    #[test]
    #[cfg(target_os = "linux")]
    fn a_thread_gets_its_short_slice_where_the_kernel_has_them_and_keeps_its_nice_value() {
        let supported = slices_supported();
        let default = current_slice();
        std::thread::spawn(move || {
            // A nice value of 3 (raising it needs no privilege) must survive the request.
            // SAFETY: gettid has no arguments; setpriority with PRIO_PROCESS and a thread id
            // acts on that one thread under Linux.
            let tid = unsafe { libc::syscall(libc::SYS_gettid) } as libc::id_t;
            assert_eq!(unsafe { libc::setpriority(libc::PRIO_PROCESS, tid, 3) }, 0);
            let hint = short_slice();
            if supported {
                assert_eq!(hint, SliceHint::Granted(SHORT_SLICE_NS));
                assert_eq!(current_slice(), Some(SHORT_SLICE_NS));
            } else {
                assert_eq!(hint, SliceHint::Unsupported);
            }
            // SAFETY: getpriority of the calling thread.
            assert_eq!(
                unsafe { libc::getpriority(libc::PRIO_PROCESS, tid) },
                3,
                "the nice value is kept"
            );
        })
        .join()
        .unwrap();
        // Another thread is untouched: the hint is per thread.
        assert_eq!(current_slice(), default);
        if supported {
            assert_ne!(default, Some(SHORT_SLICE_NS), "the default slice is longer");
        }
    }

    #[test]
    #[cfg(target_os = "linux")]
    fn a_thread_started_by_a_short_slice_thread_inherits_it_until_it_asks_for_the_default() {
        let supported = slices_supported();
        let default = current_slice();
        std::thread::spawn(move || {
            if !supported {
                assert_eq!(default_slice(), SliceHint::Unsupported);
                return;
            }
            assert_eq!(short_slice(), SliceHint::Granted(SHORT_SLICE_NS));
            std::thread::spawn(move || {
                // What a codec thread started from a network thread starts with…
                assert_eq!(current_slice(), Some(SHORT_SLICE_NS));
                // …and what it runs with once it asked.
                let d = default.expect("a default slice on 6.12+");
                assert_eq!(default_slice(), SliceHint::Granted(d));
                assert_eq!(current_slice(), Some(d));
                // Asking again changes nothing.
                assert_eq!(default_slice(), SliceHint::Granted(d));
            })
            .join()
            .unwrap();
        })
        .join()
        .unwrap();
    }
}
