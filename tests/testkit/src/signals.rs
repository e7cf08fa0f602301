//! Ctrl-C for long-running test machinery (the sandbox): SIGINT, SIGTERM and SIGHUP only set a
//! flag, so the work in progress stops at its next check and returning (or unwinding) from
//! there runs the drop guards that remove namespaces and processes. The default action would
//! kill the process on the spot and leave them behind. A second signal exits at once.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

static STOP: AtomicBool = AtomicBool::new(false);
static COUNT: AtomicUsize = AtomicUsize::new(0);

#[allow(unsafe_code)] // libc signal handling; SAFETY comments inside
extern "C" fn on_signal(_: libc::c_int) {
    // Only async-signal-safe operations here: atomics, write(2), _exit(2).
    if COUNT.fetch_add(1, Ordering::SeqCst) >= 1 {
        let msg = b"\nsecond signal, exiting now; the next run removes leftover namespaces\n";
        // SAFETY: write(2) and _exit(2) are async-signal-safe; the buffer is static.
        unsafe {
            libc::write(2, msg.as_ptr().cast(), msg.len());
            libc::_exit(130);
        }
    }
    STOP.store(true, Ordering::SeqCst);
}

/// Installs the handlers for SIGINT, SIGTERM and SIGHUP.
#[allow(unsafe_code)] // libc signal handling; SAFETY comments inside
pub fn install() {
    for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
        // SAFETY: a zeroed sigaction is a valid "no flags, empty mask" value; the handler
        // only touches atomics and async-signal-safe calls.
        unsafe {
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = on_signal as extern "C" fn(libc::c_int) as usize;
            action.sa_flags = libc::SA_RESTART;
            libc::sigemptyset(&mut action.sa_mask);
            libc::sigaction(sig, &action, std::ptr::null_mut());
        }
    }
}

/// Whether a stop was asked for.
pub fn stopped() -> bool {
    STOP.load(Ordering::SeqCst)
}

/// A stop was asked for.
#[derive(Debug, thiserror::Error)]
#[error("interrupted")]
pub struct Interrupted;

/// `Err` once a stop was asked for, so `?` unwinds to `main` through the drop guards.
pub fn check() -> Result<(), Interrupted> {
    if stopped() {
        return Err(Interrupted);
    }
    Ok(())
}

/// Waits for `d`, or less when a stop is asked for meanwhile, so an interactive program that
/// idles between steps still reacts to Ctrl-C at once.
pub fn sleep_unless_stopped(d: Duration) {
    let end = Instant::now() + d;
    while Instant::now() < end && !stopped() {
        std::thread::sleep(Duration::from_millis(50));
    }
}
