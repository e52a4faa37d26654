//! The SQLite store's one writer: group commit with an inline fast path.
//!
//! Every write is a job run in its own savepoint inside a transaction, and
//! answered only after that transaction's `COMMIT` (one fsync). Two ways in:
//!
//! - **Inline (leader).** When no write is waiting or running, the caller runs
//!   its own job and commits on its own thread (`block_in_place` on a
//!   multi-thread tokio runtime), taking along any job that queued meanwhile.
//!   A lone sequential writer then pays no hop to another thread and back,
//!   which on an idle 2-vCPU VM costs as much as a third of a commit.
//! - **Queued (followers).** Otherwise the job joins the queue, and the writer
//!   thread commits everything queued in one transaction as soon as the
//!   connection is free. Concurrent writers therefore share commits.
//!
//! The connection sits behind a mutex, so exactly one transaction is open at a
//! time whichever way a job came in. Whoever commits (a caller or the thread)
//! holds the lead until its commit is done, so a write never commits ahead of
//! one queued before it.

use std::sync::{Arc, Condvar, Mutex};

use rusqlite::Connection;

/// A write to run inside the group transaction; it returns what to do once the
/// commit's fate is known.
pub(super) type Job = Box<dyn FnOnce(&Connection) -> Completion + Send>;
/// Tells a job's caller how its commit went.
pub(super) type Completion = Box<dyn FnOnce(std::result::Result<(), String>) + Send>;

/// The most writes grouped into one commit.
const MAX_BATCH: usize = 512;

/// The writer: the connection, the queue, and the thread that drains it.
pub(super) struct Writer {
    shared: Arc<Shared>,
}

struct Shared {
    conn: Mutex<Connection>,
    queue: Mutex<Queue>,
    ready: Condvar,
}

#[derive(Default)]
struct Queue {
    jobs: Vec<Job>,
    /// A caller is committing inline.
    leading: bool,
    /// The store was dropped: the thread ends once the queue is empty.
    closed: bool,
}

impl Writer {
    /// Starts the writer thread over `conn`.
    pub(super) fn start(conn: Connection) -> std::io::Result<Self> {
        let shared = Arc::new(Shared {
            conn: Mutex::new(conn),
            queue: Mutex::new(Queue::default()),
            ready: Condvar::new(),
        });
        let thread_shared = shared.clone();
        std::thread::Builder::new()
            .name("durafn-sqlite-writer".into())
            .spawn(move || thread_loop(&thread_shared))?;
        Ok(Writer { shared })
    }

    /// Runs `job` in the next commit: inline when the writer is idle and the
    /// caller may block, queued otherwise. Returns false if the writer is gone.
    pub(super) async fn submit(&self, job: Job) -> bool {
        {
            let Ok(mut queue) = self.shared.queue.lock() else {
                return false;
            };
            if queue.closed {
                return false;
            }
            if !(queue.jobs.is_empty() && !queue.leading && can_block_in_place()) {
                queue.jobs.push(job);
                if !queue.leading {
                    self.shared.ready.notify_one();
                }
                return true;
            }
            queue.leading = true;
        }
        let mut pending = Pending {
            writer: self,
            job: Some(job),
        };
        // Let the rest of this task (the other branches of a `join`) and of
        // this worker queue their writes first, so they join this commit.
        tokio::task::yield_now().await;
        if let Some(job) = pending.job.take() {
            tokio::task::block_in_place(|| self.lead(job));
        }
        true
    }

    /// Commits `job`, with whatever queued before the connection was ours.
    fn lead(&self, job: Job) {
        let conn = self.shared.conn.lock();
        let mut batch = vec![job];
        if let Ok(mut queue) = self.shared.queue.lock() {
            take_batch(&mut queue.jobs, &mut batch);
        }
        match conn {
            Ok(conn) => commit_batch(&conn, batch),
            Err(_) => fail_batch(batch, "the SQLite writer's lock is poisoned"),
        }
        if let Ok(mut queue) = self.shared.queue.lock() {
            queue.leading = false;
            if !queue.jobs.is_empty() {
                self.shared.ready.notify_one();
            }
        }
    }
}

/// A lead not yet taken. If its caller is dropped while yielding, the job
/// goes to the writer thread instead and the lead is given up, so the writer
/// never waits on a leader that is gone.
struct Pending<'a> {
    writer: &'a Writer,
    job: Option<Job>,
}

impl Drop for Pending<'_> {
    fn drop(&mut self) {
        let Some(job) = self.job.take() else {
            return;
        };
        if let Ok(mut queue) = self.writer.shared.queue.lock() {
            queue.jobs.push(job);
            queue.leading = false;
        }
        self.writer.shared.ready.notify_one();
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        if let Ok(mut queue) = self.shared.queue.lock() {
            queue.closed = true;
        }
        self.shared.ready.notify_all();
    }
}

/// `block_in_place` panics outside a multi-thread tokio runtime.
fn can_block_in_place() -> bool {
    tokio::runtime::Handle::try_current()
        .is_ok_and(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread)
}

fn take_batch(queued: &mut Vec<Job>, batch: &mut Vec<Job>) {
    let room = MAX_BATCH.saturating_sub(batch.len());
    if queued.len() <= room {
        batch.append(queued);
    } else {
        batch.extend(queued.drain(..room));
    }
}

fn thread_loop(shared: &Shared) {
    loop {
        let mut batch = Vec::new();
        {
            let Ok(mut queue) = shared.queue.lock() else {
                return;
            };
            // While a caller leads, the queue is its to take.
            while queue.jobs.is_empty() || queue.leading {
                if queue.closed && queue.jobs.is_empty() {
                    return;
                }
                queue = match shared.ready.wait(queue) {
                    Ok(q) => q,
                    Err(_) => return,
                };
            }
            take_batch(&mut queue.jobs, &mut batch);
            // The thread leads this commit: a write submitted meanwhile
            // queues for the next one instead of committing inline ahead of
            // the jobs just taken (writes commit in the order they queued).
            queue.leading = true;
        }
        match shared.conn.lock() {
            Ok(conn) => commit_batch(&conn, batch),
            Err(_) => fail_batch(batch, "the SQLite writer's lock is poisoned"),
        }
        if let Ok(mut queue) = shared.queue.lock() {
            queue.leading = false;
        }
    }
}

fn commit_batch(conn: &Connection, batch: Vec<Job>) {
    if let Err(e) = super::run_cached(conn, "BEGIN IMMEDIATE") {
        tracing::warn!(error = %e, "SQLite BEGIN failed");
        // Nothing ran: dropping a job drops its answer channel, which its
        // caller reports as a failed write.
        drop(batch);
        return;
    }
    let completions: Vec<Completion> = batch.into_iter().map(|job| job(conn)).collect();
    let commit = super::run_cached(conn, "COMMIT").map_err(|e| e.to_string());
    if commit.is_err() {
        let _ = super::run_cached(conn, "ROLLBACK");
    }
    for done in completions {
        done(commit.clone());
    }
}

fn fail_batch(batch: Vec<Job>, why: &str) {
    tracing::warn!(error = why, "SQLite write not run");
    drop(batch);
}
