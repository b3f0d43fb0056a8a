//! Waking a viewer thread: an eventfd that the fan-out (new frame) and WHEP `DELETE` signal,
//! waited on together with the viewer's UDP socket by `ppoll`, whose timeout has nanosecond
//! resolution (a packet pacer needs sub-millisecond wake-ups).

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

pub struct Wake {
    fd: OwnedFd,
    cancelled: AtomicBool,
}

impl Wake {
    pub fn new() -> io::Result<Self> {
        // SAFETY: eventfd has no memory preconditions; the result is checked.
        let fd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(Wake {
            // SAFETY: a fresh descriptor that nothing else owns.
            fd: unsafe { OwnedFd::from_raw_fd(fd) },
            cancelled: AtomicBool::new(false),
        })
    }

    /// Wakes the waiting thread (or makes its next wait return at once).
    pub fn wake(&self) {
        let one: u64 = 1;
        // SAFETY: writes 8 bytes from a valid u64. A full counter (never in practice) only
        // means the thread is already due to wake.
        unsafe { libc::write(self.fd.as_raw_fd(), (&one as *const u64).cast(), 8) };
    }

    pub fn cancel(&self) {
        self.cancelled.store(true, Ordering::Release);
        self.wake();
    }

    pub fn cancelled(&self) -> bool {
        self.cancelled.load(Ordering::Acquire)
    }

    /// Waits until `socket` is readable, [`Wake::wake`] is called, or `timeout` passes.
    pub fn wait(&self, socket: &impl AsRawFd, timeout: Duration) -> io::Result<()> {
        let mut fds = [
            libc::pollfd {
                fd: socket.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            },
            libc::pollfd {
                fd: self.fd.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            },
        ];
        let ts = libc::timespec {
            tv_sec: timeout.as_secs().min(3600) as libc::time_t,
            tv_nsec: timeout.subsec_nanos() as libc::c_long,
        };
        // SAFETY: two valid pollfds, a valid timespec, no signal mask change.
        let r = unsafe { libc::ppoll(fds.as_mut_ptr(), 2, &ts, std::ptr::null()) };
        if r < 0 {
            let e = io::Error::last_os_error();
            return if e.kind() == io::ErrorKind::Interrupted {
                Ok(())
            } else {
                Err(e)
            };
        }
        if fds[1].revents & libc::POLLIN != 0 {
            let mut v: u64 = 0;
            // SAFETY: reads 8 bytes into a valid u64 (resets the counter).
            unsafe { libc::read(self.fd.as_raw_fd(), (&mut v as *mut u64).cast(), 8) };
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::time::Instant;

    #[test]
    fn wakes_on_signal_on_datagram_and_on_timeout() {
        let w = Arc::new(Wake::new().unwrap());
        let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        // A pending wake returns at once, and is consumed.
        w.wake();
        w.wait(&sock, Duration::from_secs(60)).unwrap();
        // From another thread.
        let w2 = w.clone();
        let t = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            w2.cancel();
        });
        w.wait(&sock, Duration::from_secs(60)).unwrap();
        assert!(w.cancelled());
        t.join().unwrap();
        // A datagram.
        let other = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        other.send_to(b"x", sock.local_addr().unwrap()).unwrap();
        w.wait(&sock, Duration::from_secs(60)).unwrap();
        // A timeout (nothing pending: the datagram is still unread, so read it first).
        let mut b = [0u8; 4];
        sock.recv_from(&mut b).unwrap();
        let t0 = Instant::now();
        w.wait(&sock, Duration::from_micros(300)).unwrap();
        assert!(t0.elapsed() >= Duration::from_micros(300));
    }
}
