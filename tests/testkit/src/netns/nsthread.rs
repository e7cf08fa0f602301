//! A long-lived thread inside one network namespace, for code under test that creates sockets
//! at several points of its life (every socket belongs to the namespace of the thread that
//! created it), e.g. a responder that joins multicast groups as IPs come and go.

use std::io;
use std::sync::mpsc;
use std::thread::{self, JoinHandle};

type Job = Box<dyn FnOnce() + Send>;

/// Runs closures, one at a time, on a thread that entered a namespace once.
pub struct NsThread {
    jobs: Option<mpsc::Sender<Job>>,
    thread: Option<JoinHandle<()>>,
    ns: String,
}

impl NsThread {
    /// Starts a thread inside namespace `ns` (its `ip netns` name).
    pub fn enter(ns: &str) -> io::Result<Self> {
        let path = format!("/run/netns/{ns}");
        let file = std::fs::File::open(&path)
            .map_err(|e| io::Error::new(e.kind(), format!("cannot open {path}: {e}")))?;
        let (tx, rx) = mpsc::channel::<Job>();
        let (ready_tx, ready_rx) = mpsc::channel::<io::Result<()>>();
        let thread = thread::Builder::new()
            .name(format!("ns-{ns}"))
            .spawn(move || {
                use std::os::fd::AsRawFd;
                // SAFETY: setns(2) with a valid namespace fd affects only this thread.
                let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
                if rc != 0 {
                    let e = io::Error::last_os_error();
                    let _ =
                        ready_tx.send(Err(io::Error::new(e.kind(), format!("setns({path}): {e}"))));
                    return;
                }
                let _ = ready_tx.send(Ok(()));
                while let Ok(job) = rx.recv() {
                    job();
                }
            })?;
        ready_rx
            .recv()
            .map_err(|_| io::Error::other(format!("thread entering {ns} died")))??;
        Ok(Self {
            jobs: Some(tx),
            thread: Some(thread),
            ns: ns.to_string(),
        })
    }

    /// Runs `f` inside the namespace and returns its result. Panics (naming the namespace) if
    /// `f` panicked.
    pub fn run<T, F>(&self, f: F) -> T
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        let (tx, rx) = mpsc::channel();
        let job: Job = Box::new(move || {
            let _ = tx.send(f());
        });
        self.jobs
            .as_ref()
            .and_then(|j| j.send(job).ok())
            .unwrap_or_else(|| panic!("netns harness: the thread in {} is gone", self.ns));
        rx.recv()
            .unwrap_or_else(|_| panic!("netns harness: a job in {} panicked", self.ns))
    }
}

impl Drop for NsThread {
    fn drop(&mut self) {
        self.jobs.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
