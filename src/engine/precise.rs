//! A `timerfd` in the shard's epoll set, for wake-ups finer than epoll's 1 ms timeout.
//!
//! `epoll_wait` takes its timeout in milliseconds, so a shard that only used the poll timeout
//! would send a message scheduled for t+0.3 ms at t+1 ms or later — a systematic lag that
//! lands, correctly but needlessly, in every latency sample. When the next timer-wheel entry
//! is due within the next millisecond, the shard arms this timer for that instant (µs
//! precision) and epoll wakes on it.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::Duration;

/// A non-blocking monotonic one-shot timer file descriptor.
pub struct PreciseTimer {
    fd: OwnedFd,
}

impl PreciseTimer {
    pub fn new() -> io::Result<PreciseTimer> {
        // SAFETY: plain syscall; the returned fd is owned below.
        let fd = unsafe {
            libc::timerfd_create(
                libc::CLOCK_MONOTONIC,
                libc::TFD_NONBLOCK | libc::TFD_CLOEXEC,
            )
        };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: fd is a fresh descriptor we own.
        Ok(PreciseTimer {
            fd: unsafe { OwnedFd::from_raw_fd(fd) },
        })
    }

    /// Fire once, `after` from now (at least 1 µs).
    pub fn arm(&self, after: Duration) -> io::Result<()> {
        let after = after.max(Duration::from_micros(1));
        let spec = libc::itimerspec {
            it_interval: libc::timespec {
                tv_sec: 0,
                tv_nsec: 0,
            },
            it_value: libc::timespec {
                tv_sec: after.as_secs() as libc::time_t,
                tv_nsec: after.subsec_nanos() as libc::c_long,
            },
        };
        // SAFETY: valid fd and a fully initialised itimerspec.
        let rc =
            unsafe { libc::timerfd_settime(self.fd.as_raw_fd(), 0, &spec, std::ptr::null_mut()) };
        if rc == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    }

    /// Consume an expiry (after an epoll event on the fd).
    pub fn clear(&self) {
        let mut buf = [0u8; 8];
        // SAFETY: reading 8 bytes into an 8-byte buffer; EAGAIN when nothing expired is fine.
        unsafe {
            libc::read(self.fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len());
        }
    }

    pub fn raw_fd(&self) -> std::os::fd::RawFd {
        self.fd.as_raw_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fires_through_epoll_well_under_a_millisecond() {
        let mut poll = mio::Poll::new().unwrap();
        let t = PreciseTimer::new().unwrap();
        let fd = t.raw_fd();
        poll.registry()
            .register(
                &mut mio::unix::SourceFd(&fd),
                mio::Token(7),
                mio::Interest::READABLE,
            )
            .unwrap();
        let mut events = mio::Events::with_capacity(4);
        t.arm(Duration::from_micros(200)).unwrap();
        poll.poll(&mut events, Some(Duration::from_secs(5)))
            .unwrap();
        assert!(events.iter().any(|e| e.token() == mio::Token(7)));
        t.clear();
    }
}
