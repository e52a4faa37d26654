//! One function's invocations and processes.
//!
//! Invocations wait in a queue until a process of the function asks for the
//! next one (`GET …/invocation/next`). Processes are spawned on demand, one
//! more whenever invocations are queued and no process is idle (up to the
//! function's limit), kept warm, and reaped when idle. A process that exits or
//! hangs past the function's timeout fails the invocation it held.

use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;
use tokio::sync::{Notify, oneshot};

/// What the emulator needs to run a function's processes.
#[derive(Debug, Clone)]
pub struct FunctionSpec {
    /// The function name (`FunctionName`).
    pub name: String,
    /// The built handler binary.
    pub executable: PathBuf,
    /// Environment variables from the template (plus the emulator's own).
    pub env: Vec<(String, String)>,
    /// The function's timeout.
    pub timeout: Duration,
    /// The function's memory size (reported to the process, not enforced).
    pub memory_mb: u32,
    /// The most processes run at once.
    pub max_instances: usize,
    /// How long an idle process is kept warm.
    pub idle_timeout: Duration,
}

/// Why an invocation produced no response.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvokeFailure {
    /// The handler reported an error through `/error`.
    #[error("{error_type}: {message}")]
    FunctionError {
        /// `errorType` of the report.
        error_type: String,
        /// `errorMessage` of the report.
        message: String,
    },
    /// The process died while holding the invocation.
    #[error("the handler process exited ({0}) during the invocation")]
    ProcessExited(String),
    /// The invocation ran past the function's timeout (the process was killed).
    #[error("the invocation timed out after {0:?}; the handler process was killed")]
    TimedOut(Duration),
    /// The handler process could not be started or failed to initialise.
    #[error("the handler could not start: {0}")]
    InitFailed(String),
    /// No process of the function was free to take the invocation in time
    /// (all of its instances were busy): it never ran.
    #[error("no handler process was free to take the invocation within {0:?}")]
    NoCapacity(Duration),
}

/// An invocation handed to a process.
#[derive(Debug)]
pub(crate) struct Delivery {
    pub(crate) request_id: String,
    pub(crate) payload: Bytes,
    pub(crate) deadline_ms: u64,
}

struct Pending {
    request_id: String,
    payload: Bytes,
    reply: oneshot::Sender<Result<Bytes, InvokeFailure>>,
    /// Told when a process takes it: its run time starts then.
    delivered: oneshot::Sender<()>,
}

struct InFlight {
    instance: u64,
    reply: oneshot::Sender<Result<Bytes, InvokeFailure>>,
}

struct Instance {
    /// Part of the process's Runtime API base path; proves a request comes from it.
    secret: String,
    /// It has asked for an invocation at least once: its initialisation is
    /// over, so its exit is never an init failure.
    ready: bool,
    polling: bool,
    last_active: Instant,
    kill: Option<oneshot::Sender<()>>,
}

#[derive(Default)]
struct State {
    queue: VecDeque<Pending>,
    in_flight: HashMap<String, InFlight>,
    instances: HashMap<u64, Instance>,
    init_errors: u32,
}

/// A function's queue, in-flight invocations and processes.
pub struct FunctionHost {
    spec: FunctionSpec,
    /// `host:port` of the Runtime API, without a path.
    api_authority: String,
    state: Mutex<State>,
    queued: Notify,
    next_instance: AtomicU64,
}

impl FunctionHost {
    /// A host for `spec`, whose processes reach the Runtime API at `api_authority`.
    pub fn new(spec: FunctionSpec, api_authority: String) -> Arc<Self> {
        Arc::new(FunctionHost {
            spec,
            api_authority,
            state: Mutex::new(State::default()),
            queued: Notify::new(),
            next_instance: AtomicU64::new(1),
        })
    }

    /// The function's settings.
    pub fn spec(&self) -> &FunctionSpec {
        &self.spec
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// How many processes are running.
    pub fn instances(&self) -> usize {
        self.state().instances.len()
    }

    /// Invokes the function with `payload` and waits for its response.
    pub async fn invoke(self: &Arc<Self>, payload: Bytes) -> Result<Bytes, InvokeFailure> {
        let request_id = uuid::Uuid::new_v4().to_string();
        let (tx, mut rx) = oneshot::channel();
        let (delivered_tx, delivered) = oneshot::channel();
        {
            let mut st = self.state();
            st.queue.push_back(Pending {
                request_id: request_id.clone(),
                payload,
                reply: tx,
                delivered: delivered_tx,
            });
        }
        self.queued.notify_one();
        self.ensure_capacity();
        // An invocation waits for a free process at most this long, and then
        // runs for the function's timeout (plus the same grace for its answer
        // to arrive) from the moment a process takes it: time spent queued
        // behind busy processes never shortens its run.
        let grace = Duration::from_secs(2);
        let queue_limit = self.spec.timeout + grace;
        let started = std::time::Instant::now();
        // `Err`: never taken; `Ok(Some)`: answered while queued (failed by
        // the pool); `Ok(None)`: taken by a process, now running.
        let taken = tokio::select! {
            answer = &mut rx => Ok(Some(answer)),
            d = tokio::time::timeout(queue_limit, delivered) => match d {
                Err(_) if self.dequeue(&request_id) => Err(InvokeFailure::NoCapacity(queue_limit)),
                // Taken (just now, or dropped unsent: the answer says why).
                _ => Ok(None),
            },
        };
        let answer = match taken {
            Err(never_ran) => Err(never_ran),
            Ok(queued) => {
                let answer = match queued {
                    Some(answer) => Ok(answer),
                    None => tokio::time::timeout(self.spec.timeout + grace, &mut rx).await,
                };
                match answer {
                    Ok(Ok(answer)) => answer,
                    Ok(Err(_)) => Err(InvokeFailure::ProcessExited(
                        "the emulator dropped the invocation".into(),
                    )),
                    Err(_) => {
                        self.time_out(&request_id);
                        Err(InvokeFailure::TimedOut(self.spec.timeout))
                    }
                }
            }
        };
        crate::metrics::invocation_answer(&self.spec.name, &answer, started.elapsed());
        answer
    }

    /// Takes a still-queued invocation out of the queue; false if a process
    /// has taken it already.
    fn dequeue(&self, request_id: &str) -> bool {
        let mut st = self.state();
        let before = st.queue.len();
        st.queue.retain(|p| p.request_id != request_id);
        st.queue.len() != before
    }

    /// Kills the process running a timed-out invocation (a taken one: the
    /// queue no longer holds it).
    fn time_out(&self, request_id: &str) {
        let mut st = self.state();
        if let Some(f) = st.in_flight.remove(request_id) {
            if let Some(kill) = st
                .instances
                .get_mut(&f.instance)
                .and_then(|i| i.kill.take())
            {
                let _ = kill.send(());
            }
        }
    }

    /// Spawns a process if invocations are waiting and no process is idle.
    fn ensure_capacity(self: &Arc<Self>) {
        // Decide and reserve under one lock, so concurrent callers never start
        // more than `max_instances`, and the process is known before it polls.
        let reserved = {
            let mut st = self.state();
            let idle = st.instances.values().filter(|i| i.polling).count();
            if st.queue.len() > idle && st.instances.len() < self.spec.max_instances.max(1) {
                let id = self.next_instance.fetch_add(1, Ordering::SeqCst);
                let secret = uuid::Uuid::new_v4().simple().to_string();
                st.instances.insert(
                    id,
                    Instance {
                        secret: secret.clone(),
                        ready: false,
                        polling: false,
                        last_active: Instant::now(),
                        kill: None,
                    },
                );
                Some((id, secret))
            } else {
                None
            }
        };
        if let Some((id, secret)) = reserved {
            self.spawn_instance(id, secret);
        }
    }

    fn spawn_instance(self: &Arc<Self>, id: u64, secret: String) {
        // `lambda_runtime` accepts a full URL here, which lets each process have its own base path.
        let api = format!(
            "http://{}/fn/{}/{id}-{secret}",
            self.api_authority, self.spec.name
        );
        let mut cmd = Command::new(&self.spec.executable);
        cmd.envs(self.spec.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .env("AWS_LAMBDA_RUNTIME_API", api)
            .env("AWS_LAMBDA_FUNCTION_NAME", &self.spec.name)
            .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
            .env(
                "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
                self.spec.memory_mb.to_string(),
            )
            .env(
                "AWS_LAMBDA_LOG_STREAM_NAME",
                format!("{}/{id}", self.spec.name),
            )
            // The SDK writes the handler's log lines as records on stdout (crate::logs).
            .env("DURAFN_LOG_CAPTURE", "stdout")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = match cmd.spawn() {
            Ok(c) => c,
            Err(e) => {
                let msg = format!("cannot run {}: {e}", self.spec.executable.display());
                tracing::error!(function = %self.spec.name, "{msg}");
                self.state().instances.remove(&id);
                self.fail_queued(InvokeFailure::InitFailed(msg));
                return;
            }
        };
        let prefix = format!("{}#{id}", self.spec.name);
        if let Some(out) = child.stdout.take() {
            let function = self.spec.name.clone();
            tokio::spawn(forward_lines(
                prefix.clone(),
                BufReader::new(out),
                Some(function),
            ));
        }
        if let Some(err) = child.stderr.take() {
            tokio::spawn(forward_lines(prefix, BufReader::new(err), None));
        }
        let (kill_tx, kill_rx) = oneshot::channel();
        let kill_now = match self.state().instances.get_mut(&id) {
            Some(inst) => {
                inst.kill = Some(kill_tx);
                None
            }
            // Reaped or shut down while starting: stop it at once.
            None => Some(kill_tx),
        };
        if let Some(k) = kill_now {
            let _ = k.send(());
        }
        tracing::debug!(function = %self.spec.name, instance = id, "started a handler process");
        let host = self.clone();
        tokio::spawn(async move {
            let status = tokio::select! {
                s = child.wait() => s.map(|s| s.to_string()).unwrap_or_else(|e| e.to_string()),
                _ = kill_rx => {
                    let _ = child.kill().await;
                    "killed by the emulator".to_string()
                }
            };
            host.on_exit(id, status);
        });
    }

    fn fail_queued(&self, failure: InvokeFailure) {
        let waiting: Vec<Pending> = self.state().queue.drain(..).collect();
        for p in waiting {
            let _ = p.reply.send(Err(failure.clone()));
        }
    }

    fn on_exit(self: &Arc<Self>, id: u64, status: String) {
        let (orphans, gave_up) = {
            let mut st = self.state();
            // Killed by the emulator (a timed-out invocation, an idle reap,
            // shutdown): its kill sender was taken.
            let (ready, killed) = st
                .instances
                .remove(&id)
                .map_or((false, true), |i| (i.ready, i.kill.is_none()));
            let mine: Vec<String> = st
                .in_flight
                .iter()
                .filter(|(_, f)| f.instance == id)
                .map(|(k, _)| k.clone())
                .collect();
            let orphans: Vec<InFlight> =
                mine.iter().filter_map(|k| st.in_flight.remove(k)).collect();
            if !ready && !killed && orphans.is_empty() && !st.queue.is_empty() {
                // It died on its own before asking for any work: an init
                // failure. (A process killed for an invocation's timeout is
                // not one: counting those once failed every queued
                // invocation after three slow ones.)
                st.init_errors += 1;
            } else if ready {
                st.init_errors = 0;
            }
            (orphans, st.init_errors >= 3)
        };
        tracing::debug!(function = %self.spec.name, instance = id, %status, "handler process exited");
        for f in orphans {
            let _ = f
                .reply
                .send(Err(InvokeFailure::ProcessExited(status.clone())));
        }
        if gave_up {
            self.state().init_errors = 0;
            self.fail_queued(InvokeFailure::InitFailed(format!(
                "the handler process exited ({status}) three times before taking an invocation"
            )));
        } else {
            self.ensure_capacity();
        }
    }

    /// The process a Runtime API base path segment (`<id>-<secret>`) belongs
    /// to, if the secret matches: only that process can take and answer its
    /// invocations, even when the server listens beyond localhost.
    pub(crate) fn authenticate(&self, segment: &str) -> Option<u64> {
        let (id, secret) = segment.split_once('-')?;
        let id: u64 = id.parse().ok()?;
        let st = self.state();
        let inst = st.instances.get(&id)?;
        crate::auth::same_secret(secret, &inst.secret).then_some(id)
    }

    /// Waits for the next invocation for process `instance` (long poll).
    pub(crate) async fn next(&self, instance: u64) -> Option<Delivery> {
        loop {
            let notified = self.queued.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            {
                let mut st = self.state();
                match st.instances.get_mut(&instance) {
                    Some(i) => i.ready = true,
                    None => return None,
                }
                if let Some(p) = st.queue.pop_front() {
                    let _ = p.delivered.send(());
                    if let Some(i) = st.instances.get_mut(&instance) {
                        i.polling = false;
                        i.last_active = Instant::now();
                    }
                    st.in_flight.insert(
                        p.request_id.clone(),
                        InFlight {
                            instance,
                            reply: p.reply,
                        },
                    );
                    let deadline = std::time::SystemTime::now() + self.spec.timeout;
                    let deadline_ms = deadline
                        .duration_since(std::time::UNIX_EPOCH)
                        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
                        .unwrap_or(0);
                    if !st.queue.is_empty() {
                        self.queued.notify_one();
                    }
                    return Some(Delivery {
                        request_id: p.request_id,
                        payload: p.payload,
                        deadline_ms,
                    });
                }
                if let Some(i) = st.instances.get_mut(&instance) {
                    if !i.polling {
                        i.polling = true;
                        i.last_active = Instant::now();
                    }
                }
            }
            notified.await;
        }
    }

    /// Completes an invocation with a response or an error; false if unknown.
    pub(crate) fn complete(
        &self,
        instance: u64,
        request_id: &str,
        answer: Result<Bytes, InvokeFailure>,
    ) -> bool {
        let entry = {
            let mut st = self.state();
            match st.in_flight.get(request_id) {
                Some(f) if f.instance == instance => st.in_flight.remove(request_id),
                _ => None,
            }
        };
        match entry {
            Some(f) => {
                let _ = f.reply.send(answer);
                true
            }
            None => false,
        }
    }

    /// Kills processes that have been idle longer than the idle timeout.
    pub fn reap_idle(&self) -> usize {
        let mut st = self.state();
        let limit = self.spec.idle_timeout;
        let mut n = 0;
        for inst in st.instances.values_mut() {
            if inst.polling && inst.last_active.elapsed() >= limit {
                if let Some(kill) = inst.kill.take() {
                    let _ = kill.send(());
                    n += 1;
                }
            }
        }
        n
    }

    /// Kills every process (on shutdown).
    pub fn kill_all(&self) {
        let mut st = self.state();
        for inst in st.instances.values_mut() {
            if let Some(kill) = inst.kill.take() {
                let _ = kill.send(());
            }
        }
    }
}

/// Echoes a handler process's output; on stdout (`capture`: its function),
/// the SDK's captured records go to [`crate::logs`] instead.
async fn forward_lines<R: tokio::io::AsyncRead + Unpin>(
    prefix: String,
    reader: BufReader<R>,
    capture: Option<String>,
) {
    let mut lines = reader.lines();
    while let Ok(Some(line)) = lines.next_line().await {
        if let Some(function) = &capture {
            if crate::logs::ingest(function, &line) {
                continue;
            }
        }
        eprintln!("[{prefix}] {line}");
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure

    use super::*;

    /// A real process running `script` (the test takes its invocations in
    /// its place, through [`FunctionHost::next`]).
    fn host_of(dir: &std::path::Path, script: &str) -> Arc<FunctionHost> {
        use std::os::unix::fs::PermissionsExt;
        let path = dir.join("handler.sh");
        std::fs::write(&path, format!("#!/bin/sh\n{script}\n")).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        FunctionHost::new(
            FunctionSpec {
                name: "f".into(),
                executable: path,
                env: Vec::new(),
                timeout: Duration::from_secs(3),
                memory_mb: 128,
                max_instances: 1,
                idle_timeout: Duration::from_secs(60),
            },
            "127.0.0.1:1".into(),
        )
    }

    /// Waits (at most 10 s) until `f` holds of the host's state.
    async fn until(host: &FunctionHost, what: &str, f: impl Fn(&State) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !f(&host.state()) {
            assert!(Instant::now() < deadline, "never: {what}");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn processes_the_emulator_kills_are_not_init_failures() {
        let dir = tempfile::tempdir().unwrap();
        let host = host_of(dir.path(), "exec sleep 60");
        let call = {
            let host = host.clone();
            tokio::spawn(async move { host.invoke(Bytes::from_static(b"queued")).await })
        };
        // Three processes in a row are killed by the emulator (as for an
        // invocation that ran past its timeout) while an invocation waits.
        for n in 1..=3u64 {
            until(&host, "the next process started", |st| {
                st.instances.get(&n).is_some_and(|i| i.kill.is_some())
            })
            .await;
            let kill = {
                let mut st = host.state();
                let inst = st.instances.get_mut(&n).unwrap();
                inst.ready = n == 1;
                inst.kill.take().unwrap()
            };
            kill.send(()).unwrap();
            until(&host, "the process exited", |st| {
                !st.instances.contains_key(&n)
            })
            .await;
        }
        // The waiting invocation was not failed as "could not start": a
        // fourth process takes it.
        until(&host, "a fourth process started", |st| {
            st.instances.contains_key(&4)
        })
        .await;
        let d = tokio::time::timeout(Duration::from_secs(10), host.next(4))
            .await
            .expect("no fourth process took the queued invocation")
            .expect("no fourth process");
        assert_eq!(d.payload, "queued");
        assert!(host.complete(4, &d.request_id, Ok(Bytes::from_static(b"done"))));
        assert_eq!(call.await.unwrap(), Ok(Bytes::from_static(b"done")));
        host.kill_all();
    }

    /// Virtual time: the run timeout starts when a process takes the
    /// invocation (not when it was queued), and a queued invocation no
    /// process takes in time fails as never run.
    #[tokio::test(start_paused = true)]
    async fn the_run_timeout_starts_when_a_process_takes_the_invocation() {
        let dir = tempfile::tempdir().unwrap();
        let host = host_of(dir.path(), "exec sleep 600");
        let timeout = host.spec.timeout;
        let grace = Duration::from_secs(2);
        let invoke = |body: &'static [u8]| {
            let host = host.clone();
            tokio::spawn(async move { host.invoke(Bytes::from_static(body)).await })
        };
        let a = invoke(b"a");
        until(&host, "a process started", |st| {
            st.instances.contains_key(&1)
        })
        .await;
        let first = host.next(1).await.unwrap();
        assert_eq!(first.payload, "a");
        // B waits behind A for most of the queue limit.
        let b = invoke(b"b");
        tokio::time::sleep(timeout).await;
        assert!(host.complete(1, &first.request_id, Ok(Bytes::from_static(b"A"))));
        assert_eq!(a.await.unwrap(), Ok(Bytes::from_static(b"A")));
        let second = host.next(1).await.unwrap();
        assert_eq!(second.payload, "b");
        // Answered after a full timeout of running: queued + running is past
        // the old limit, but the run itself is within it.
        tokio::time::sleep(timeout + grace / 2).await;
        assert!(host.complete(1, &second.request_id, Ok(Bytes::from_static(b"B"))));
        assert_eq!(b.await.unwrap(), Ok(Bytes::from_static(b"B")));
        // Nobody takes C: it fails as never run, and leaves the queue.
        let c = invoke(b"c");
        assert_eq!(
            c.await.unwrap(),
            Err(InvokeFailure::NoCapacity(timeout + grace))
        );
        assert!(host.state().queue.is_empty());
        host.kill_all();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn three_processes_dying_before_asking_for_work_fail_the_queue() {
        let dir = tempfile::tempdir().unwrap();
        let host = host_of(dir.path(), "exit 3");
        let answer = tokio::time::timeout(
            Duration::from_secs(30),
            host.invoke(Bytes::from_static(b"x")),
        )
        .await
        .expect("the invocation was never failed");
        match answer {
            Err(InvokeFailure::InitFailed(msg)) => {
                assert!(msg.contains("three times"), "{msg}");
            }
            other => panic!("expected an init failure, got {other:?}"),
        }
    }
}
