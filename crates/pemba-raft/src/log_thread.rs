//! The thread a disk log writes and syncs on, so that no fsync blocks the async runtime (the
//! Raft core runs there). Jobs run one at a time, in the order they were sent: the log's steps
//! stay in order. A memory log (tests, simulations) has no thread and runs its steps inline,
//! since a real thread would escape a simulation's scheduler.

use std::sync::mpsc;

use crate::log_store::LogBackendError;

/// A step of the log's I/O.
type Job = Box<dyn FnOnce() + Send>;

/// A handle on the log's I/O thread; the thread ends once every handle is dropped.
#[derive(Clone)]
pub(crate) struct LogThread {
    jobs: mpsc::Sender<Job>,
}

impl LogThread {
    /// Starts the thread.
    pub(crate) fn spawn() -> Result<LogThread, LogBackendError> {
        let (jobs, queue) = mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("pemba-log-io".into())
            .spawn(move || {
                for job in queue {
                    job();
                }
            })
            .map_err(|e| LogBackendError::storage("starting the log's I/O thread", e))?;
        Ok(LogThread { jobs })
    }

    /// Queues `job` behind the steps sent before it.
    pub(crate) fn run(&self, job: impl FnOnce() + Send + 'static) -> Result<(), LogBackendError> {
        self.jobs
            .send(Box::new(job))
            .map_err(|_| LogBackendError::ThreadGone)
    }
}
