//! Assembling the platform: template → built functions → store → dispatcher,
//! Lambda APIs and REST API on one listener.

use std::collections::{BTreeSet, HashMap};
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use durafn_runtime::clock::Clock;
use durafn_runtime::dispatch::{
    ConcurrencyLimit, Dispatcher, DispatcherConfig, FlowControl, KeyLimit, ShardLeaseConfig,
    ShardLeaser,
};
use durafn_runtime::store::{RetryingStore, Store};
use tokio::net::TcpListener;

use crate::api::{self, ApiState, Metrics};
use crate::auth::Guard;
use crate::lambda_api::{self, FunctionHost, FunctionSpec, Hosts, ProcessInvoker};
use crate::platform::Platform;
use crate::routes::Limits;
use crate::template::{self, Template};

/// How to run the platform.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// The SAM template.
    pub template: PathBuf,
    /// The store URL (`sqlite://PATH` or `dynamodb://TABLE?...`).
    pub store_url: String,
    /// Required API token, if any.
    pub token: Option<String>,
    /// Build the functions with `--release`.
    pub release: bool,
    /// Use these executables instead of building (function name → path).
    pub executables: HashMap<String, PathBuf>,
    /// The most processes per function.
    pub max_instances: usize,
    /// How long an idle process is kept warm.
    pub idle_timeout: Duration,
    /// How often the due index is polled when nothing wakes the dispatcher.
    pub poll_interval: Duration,
    /// Play AWS (`durafn dev --aws`): run the template's own dispatcher and
    /// control functions (`Metadata.DurafnRole`) as handler processes instead
    /// of this process's dispatcher, REST API and UI (see [`AwsMode`]).
    pub aws: Option<AwsMode>,
    /// The blob store for payloads over 1 MiB (`file:///PATH`,
    /// `s3://BUCKET/PREFIX`; `DURAFN_BLOBS` for the handler processes). `None`:
    /// payloads stay in the records, up to 4 MiB. See `docs/payloads.md`.
    pub blobs: Option<String>,
}

/// How `durafn dev --aws` plays AWS.
///
/// No dispatcher runs in the emulator: the template's dispatcher function is
/// fed by its wake queue (the emulator's SQS, `DelaySeconds` honoured) and a
/// sweep every `sweep_interval` (its `rate(1 minute)` schedule, sped up for
/// tests), and invokes functions through the emulator's Invoke API
/// (`InvocationType=Event`). The REST API and UI are the control function's,
/// reached through its HttpApi route. Every function gets the AWS SDK's
/// service endpoints (`AWS_ENDPOINT_URL_SQS`, `AWS_ENDPOINT_URL_LAMBDA`)
/// pointed at the emulator.
#[derive(Debug, Clone)]
pub struct AwsMode {
    /// How often the dispatcher function is invoked with a sweep.
    pub sweep_interval: Duration,
    /// The control function's API token (`DURAFN_API_TOKEN`).
    pub control_token: String,
}

impl ServerConfig {
    /// Defaults for a template and a store.
    pub fn new(template: PathBuf, store_url: String) -> Self {
        ServerConfig {
            template,
            store_url,
            token: None,
            release: false,
            executables: HashMap::new(),
            max_instances: 8,
            idle_timeout: Duration::from_secs(300),
            poll_interval: Duration::from_millis(100),
            aws: None,
            blobs: None,
        }
    }
}

/// The store URL handler processes use. A DynamoDB store they reach
/// directly, as on AWS. The embedded SQLite store they reach through this
/// emulator ([`crate::store_api`]), so one writer group-commits the
/// checkpoints of every process.
fn handler_store_url(url: &str, authority: &str, secret: &str) -> String {
    if url.starts_with("sqlite://") {
        crate::store_api::url(authority, secret)
    } else {
        url.to_string()
    }
}

/// Variables of the AWS wake path that a local run leaves out: the
/// emulator's own dispatcher hears of every wake-up directly.
const LOCAL_ONLY_OMITTED: &[&str] = &["DURAFN_WAKE_QUEUE_URL", "DURAFN_WAKE_DLQ_URL"];

/// The payload the dispatcher function's sweep schedule sends.
const SWEEP_PAYLOAD: &str = r#"{"durafn_sweep": {}}"#;

/// Reads the template and builds (or locates) every function's executable.
pub async fn prepare(
    config: &ServerConfig,
) -> anyhow::Result<(Template, HashMap<String, PathBuf>)> {
    let mut template = template::load(&config.template)?;
    if config.aws.is_none() {
        // Locally the emulator is the dispatcher and the control API.
        template.functions.retain(|f| f.platform.is_none());
        for f in &mut template.functions {
            for var in LOCAL_ONLY_OMITTED {
                f.environment.remove(*var);
            }
        }
    }
    let root = config
        .template
        .parent()
        .map(|p| {
            if p.as_os_str().is_empty() {
                std::path::Path::new(".")
            } else {
                p
            }
        })
        .unwrap_or(std::path::Path::new("."))
        .to_path_buf();
    let mut executables = HashMap::new();
    for f in &template.functions {
        let exe = match config.executables.get(&f.name) {
            Some(p) => p.clone(),
            None => {
                tracing::info!(function = %f.name, code_uri = %f.code_uri, "building");
                crate::cargo_build::build_function(&root, f, config.release).await?
            }
        };
        executables.insert(f.name.clone(), exe);
    }
    Ok((template, executables))
}

/// Runs the platform on `listener` until `shutdown` completes. Everything
/// that keeps time — the dispatcher, schedules, queues' visibility, purges —
/// reads `clock` (the command passes [`durafn_runtime::clock::SystemClock`]).
pub async fn serve(
    config: ServerConfig,
    clock: Arc<dyn Clock>,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    // Settings read from the environment are checked before any build.
    let unix_store = crate::store_api::UnixSocket::wanted()?;
    let (template, executables) = prepare(&config).await?;
    let routes = crate::http_routes::routes_of(&template)?;
    let store: Arc<dyn Store> = Arc::new(RetryingStore::new(
        durafn_runtime::store::open_async(&config.store_url)
            .await
            .map(crate::metrics::metered)
            .with_context(|| format!("opening the store {}", config.store_url))?,
    ));
    // The REST API, UI, triggers and purges see payloads (offloaded and
    // resolved); the dispatcher and the store over HTTP pass records as they
    // are, so handler processes read and write large payloads themselves.
    let payloads = crate::payloads::offloading(&store, config.blobs.as_deref())?;
    let addr = listener.local_addr()?;
    let authority = format!("127.0.0.1:{}", addr.port());
    let store_secret = crate::store_api::new_secret();
    // SQLite: handler processes reach the store through this process, on
    // its port or (DURAFN_STORE_TRANSPORT=unix) a Unix socket of its own.
    let mut store_socket = match unix_store && config.store_url.starts_with("sqlite://") {
        true => crate::store_api::UnixSocket::bind(&store_secret)?,
        false => None,
    };
    let handler_store = match &store_socket {
        Some(socket) => socket.url(&store_secret),
        None => handler_store_url(&config.store_url, &authority, &store_secret),
    };

    let mut hosts = HashMap::new();
    let mut timeouts = HashMap::new();
    for f in &template.functions {
        let Some(exe) = executables.get(&f.name) else {
            continue;
        };
        let mut env: Vec<(String, String)> = f
            .environment
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        env.retain(|(k, _)| k != "DURAFN_STORE");
        env.push(("DURAFN_STORE".into(), handler_store.clone()));
        crate::payloads::environment(&mut env, config.blobs.as_deref());
        if let Ok(filter) = std::env::var("RUST_LOG") {
            env.push(("RUST_LOG".into(), filter));
        }
        if let Some(aws) = &config.aws {
            aws_environment(&mut env, &authority, aws, f.platform);
        }
        if dispatched_starts(f) {
            // Its HTTP and queue starts wait for the dispatcher (limits,
            // flow control) instead of running in the handler at once.
            env.push((
                durafn_runtime::dispatch::DISPATCHED_STARTS_ENV.into(),
                "1".into(),
            ));
        }
        if f.pause_on_failure {
            env.push((
                durafn_runtime::dispatch::PAUSE_ON_FAILURE_ENV.into(),
                "1".into(),
            ));
        }
        let spec = FunctionSpec {
            name: f.name.clone(),
            executable: exe.clone(),
            env,
            timeout: f.timeout,
            memory_mb: f.memory_size_mb,
            max_instances: config.max_instances,
            idle_timeout: config.idle_timeout,
        };
        timeouts.insert(f.name.clone(), f.timeout);
        hosts.insert(f.name.clone(), FunctionHost::new(spec, authority.clone()));
    }
    let hosts: Hosts = Arc::new(hosts);

    let local_dispatch = config.aws.is_none();
    let leaser = shard_leaser(
        &config.store_url,
        &store,
        &clock,
        addr.port(),
        local_dispatch,
    );
    let mut dconfig = DispatcherConfig::default();
    dconfig.poll_interval = config.poll_interval;
    dconfig.shards = leaser.as_ref().map(|l| l.held());
    dconfig.limits = Arc::new(concurrency_limits(&template));
    dconfig.flow = Arc::new(flow_controls(&template));
    let timeouts = Arc::new(timeouts);
    dconfig.timeout_for =
        Arc::new(move |f: &str| timeouts.get(f).copied().unwrap_or(Duration::from_secs(30)));
    // No more invocations at once than the function has processes: the rest
    // wait unclaimed instead of timing out in the process queue.
    let capacities: HashMap<String, usize> = hosts
        .iter()
        .map(|(name, h)| (name.clone(), h.spec().max_instances.max(1)))
        .collect();
    dconfig.capacity_for = Arc::new(move |f: &str| capacities.get(f).copied());
    // Flow control and keyed limits read inputs (keys, batch members): their
    // dispatcher sees payloads resolved; others need not fetch blobs.
    let reads_inputs = template
        .functions
        .iter()
        .any(|f| !f.flow.is_empty() || f.concurrency.key.is_some());
    let dispatch_store = match reads_inputs {
        true => payloads.clone(),
        false => store.clone(),
    };
    let dispatcher = Arc::new(Dispatcher::new(
        dispatch_store,
        clock.clone(),
        Arc::new(ProcessInvoker::new(hosts.clone())),
        dconfig,
    ));

    let state = ApiState {
        store: payloads.clone(),
        clock: clock.clone(),
        functions: Arc::new(
            template
                .functions
                .iter()
                .map(|f| f.name.clone())
                .collect::<BTreeSet<_>>(),
        ),
        flow: Arc::new(flow_controls(&template)),
        dispatch: local_dispatch.then(|| dispatcher.handle()),
        token: config.token.as_deref().map(Arc::from),
        metrics: Arc::new(Metrics::default()),
    };
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let guard = Guard::new(config.token.as_deref());
    let limits = Limits::for_guard(&guard);
    let platform = Platform {
        template: Arc::new(template.clone()),
        store: payloads.clone(),
        clock: state.clock.clone(),
        hosts: hosts.clone(),
        api: state.clone(),
        guard: guard.clone(),
        limits,
        shutdown: stop_rx.clone(),
        shards: leaser.as_ref().map(|l| l.held()),
    };
    let own = if local_dispatch {
        api::router_with(state.clone(), &guard, &limits)
            .merge(crate::ui::router_with(state.clone(), &guard, &limits))
            .merge(crate::schedules::start(&platform)?)
    } else {
        // The control function serves the API; the dispatcher function
        // dispatches, swept on a timer as EventBridge Scheduler would.
        start_sweeps(&platform, config.aws.as_ref());
        start_eventbridge_schedules(&platform)?;
        axum::Router::new()
    };
    let app = own
        .merge(crate::queues::start(&platform)?)
        .merge(lambda_api::router(hosts.clone(), &guard, &limits))
        .merge(crate::store_api::router(store.clone(), &store_secret))
        .merge(crate::http_routes::router(&routes, &hosts, state)?);
    let socket_task = store_socket.as_mut().and_then(|socket| {
        socket.serve(
            crate::store_api::router(store.clone(), &store_secret),
            stop_rx.clone(),
        )
    });

    let lease_task = leaser.map(|leaser| {
        let mut rx = stop_rx.clone();
        tokio::spawn(async move {
            leaser
                .run(async move {
                    let _ = rx.wait_for(|stop| *stop).await;
                })
                .await
        })
    });
    let dispatch_task = {
        let dispatcher = dispatcher.clone();
        let mut rx = stop_rx.clone();
        tokio::spawn(async move {
            let stopped = async move {
                let _ = rx.wait_for(|stop| *stop).await;
            };
            if local_dispatch {
                dispatcher.run(stopped).await
            } else {
                stopped.await
            }
        })
    };
    let config_idle = config.idle_timeout;
    let reaper = {
        let hosts = hosts.clone();
        let store = payloads.clone();
        let clock = clock.clone();
        tokio::spawn(async move {
            // Check often enough that a short idle timeout is honoured closely.
            let every = (config_idle / 4).clamp(Duration::from_millis(250), Duration::from_secs(5));
            // Finished executions past their retention (DURAFN_RETENTION_SECONDS) are deleted.
            let purge_every = (durafn_runtime::model::retention() / 2)
                .clamp(Duration::from_secs(1), Duration::from_secs(60));
            let mut last_purge = std::time::Instant::now();
            loop {
                tokio::time::sleep(every).await;
                for h in hosts.values() {
                    h.reap_idle();
                }
                if last_purge.elapsed() >= purge_every {
                    last_purge = std::time::Instant::now();
                    match store.purge_expired(clock.now()).await {
                        Ok(0) => {}
                        Ok(n) => tracing::debug!(purged = n, "purged expired executions"),
                        Err(e) => tracing::warn!(error = %e, "could not purge expired executions"),
                    }
                }
            }
        })
    };
    tracing::info!(%addr, functions = ?hosts.keys().collect::<Vec<_>>(), "durafn is serving");
    let mut rx = stop_rx;
    let server = axum::serve(listener, app).with_graceful_shutdown(async move {
        shutdown.await;
        let _ = stop_tx.send(true);
    });
    let result = server.await;
    let _ = rx.wait_for(|stop| *stop).await;
    reaper.abort();
    let _ = dispatch_task.await;
    if let Some(t) = lease_task {
        let _ = t.await;
    }
    for h in hosts.values() {
        h.kill_all();
    }
    if let Some(t) = socket_task {
        // Its connections were the handler processes', just killed.
        let abort = t.abort_handle();
        if tokio::time::timeout(Duration::from_secs(2), t)
            .await
            .is_err()
        {
            abort.abort();
        }
    }
    drop(store_socket);
    result.map_err(Into::into)
}

/// Whether a function's starts must go through the dispatcher: it has
/// concurrency limits or flow control.
fn dispatched_starts(f: &crate::template::FunctionDef) -> bool {
    f.concurrency.reserved.is_some() || f.concurrency.key.is_some() || !f.flow.is_empty()
}

/// The template's flow control, by function (only functions that have some).
pub(crate) fn flow_controls(template: &Template) -> HashMap<String, FlowControl> {
    template
        .functions
        .iter()
        .filter(|f| !f.flow.is_empty())
        .map(|f| (f.name.clone(), f.flow.clone()))
        .collect()
}

/// The template's concurrency limits, by function (see [`template::Concurrency`]).
fn concurrency_limits(template: &Template) -> HashMap<String, ConcurrencyLimit> {
    template
        .functions
        .iter()
        .filter_map(|f| {
            let c = &f.concurrency;
            let key = c
                .key
                .as_deref()
                .and_then(|k| KeyLimit::parse(k, c.max_per_key));
            (c.reserved.is_some() || key.is_some())
                .then(|| (f.name.clone(), ConcurrencyLimit::new(c.reserved, key)))
        })
        .collect()
}

/// The shard leaser of a replica sharing its store with others: with a
/// DynamoDB (or Alternator) store, which several `durafn server` replicas may
/// share, unless `DURAFN_SHARD_LEASES=off`. The replica's id is
/// `DURAFN_REPLICA_ID`, else `<hostname>:<port>` (stable across restarts, so
/// a restarted replica renews its own leases at once); the lease TTL is
/// `DURAFN_SHARD_LEASE_TTL_MS` (default 10 000). An embedded SQLite store has
/// one writer, so one replica: no leases, every shard scanned.
fn shard_leaser(
    store_url: &str,
    store: &Arc<dyn Store>,
    clock: &Arc<dyn Clock>,
    port: u16,
    local_dispatch: bool,
) -> Option<ShardLeaser> {
    let wanted = std::env::var("DURAFN_SHARD_LEASES")
        .map_or(store_url.starts_with("dynamodb://"), |v| {
            !matches!(v.as_str(), "off" | "0" | "false")
        });
    if !wanted || !local_dispatch {
        return None;
    }
    let replica = std::env::var("DURAFN_REPLICA_ID")
        .ok()
        .filter(|r| !r.is_empty())
        .unwrap_or_else(|| {
            let host = std::env::var("HOSTNAME")
                .ok()
                .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
                .map(|h| h.trim().to_string())
                .filter(|h| !h.is_empty())
                .unwrap_or_else(|| "localhost".into());
            format!("{host}:{port}")
        });
    let mut lease = ShardLeaseConfig::new(replica.clone());
    if let Some(ms) = std::env::var("DURAFN_SHARD_LEASE_TTL_MS")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
    {
        lease = lease.with_ttl(Duration::from_millis(ms));
    }
    tracing::info!(replica, ttl = ?lease.ttl, "sharing the due shards with other replicas through leases");
    Some(ShardLeaser::new(store.clone(), clock.clone(), lease))
}

/// The environment `durafn dev --aws` gives every function: AWS SDK
/// endpoints on the emulator, dummy credentials, a region, and the control
/// function's token.
fn aws_environment(
    env: &mut Vec<(String, String)>,
    authority: &str,
    aws: &AwsMode,
    role: Option<crate::template::PlatformRole>,
) {
    let endpoint = format!("http://{authority}");
    let mut set = |k: &str, v: String| {
        env.retain(|(key, _)| key != k);
        env.push((k.to_string(), v));
    };
    set("AWS_ENDPOINT_URL_SQS", endpoint.clone());
    set("AWS_ENDPOINT_URL_LAMBDA", endpoint);
    for (k, default) in [
        ("AWS_ACCESS_KEY_ID", "x"),
        ("AWS_SECRET_ACCESS_KEY", "x"),
        ("AWS_REGION", "us-east-1"),
    ] {
        set(k, std::env::var(k).unwrap_or_else(|_| default.to_string()));
    }
    if role == Some(crate::template::PlatformRole::Control) {
        set("DURAFN_API_TOKEN", aws.control_token.clone());
    }
}

/// Invokes each dispatcher function with a sweep every `sweep_interval`, one
/// sweep at a time, until the platform stops.
fn start_sweeps(platform: &Platform, aws: Option<&AwsMode>) {
    let Some(aws) = aws else { return };
    let dispatchers: Vec<_> = platform
        .template
        .functions
        .iter()
        .filter(|f| f.platform == Some(crate::template::PlatformRole::Dispatcher))
        .filter_map(|f| platform.hosts.get(&f.name).cloned())
        .collect();
    for host in dispatchers {
        let every = aws.sweep_interval.max(Duration::from_millis(100));
        let mut shutdown = platform.shutdown.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = shutdown.wait_for(|stop| *stop) => return,
                    _ = tick.tick() => {}
                }
                if let Err(e) = host
                    .invoke(bytes::Bytes::from_static(SWEEP_PAYLOAD.as_bytes()))
                    .await
                {
                    tracing::warn!(function = %host.spec().name, error = %e, "sweep invocation failed");
                }
            }
        });
    }
}

/// Plays EventBridge Scheduler for the durable functions' `ScheduleV2`
/// events: at each fire time, invokes the function asynchronously with the
/// event's `Input`, its `<aws.scheduler.scheduled-time>` (and
/// `<aws.scheduler.execution-id>`) expanded, as AWS does.
fn start_eventbridge_schedules(platform: &Platform) -> anyhow::Result<()> {
    use durafn_runtime::trigger::schedule::{ScheduleSpec, fire_time_rfc3339};
    for f in platform
        .template
        .functions
        .iter()
        .filter(|f| f.platform.is_none())
    {
        let Some(host) = platform.hosts.get(&f.name).cloned() else {
            continue;
        };
        for ev in &f.events {
            let crate::template::EventKind::Schedule {
                expression,
                timezone,
                enabled: true,
                input,
                ..
            } = &ev.kind
            else {
                continue;
            };
            let spec = ScheduleSpec::parse(&expression.to_string(), timezone.as_deref())
                .with_context(|| {
                    format!(
                        "schedule event `{}` of function {} (template line {})",
                        ev.name, f.name, ev.line
                    )
                })?;
            let input = input.clone().unwrap_or_else(|| "{}".to_string());
            let clock = platform.clock.clone();
            let mut shutdown = platform.shutdown.clone();
            let host = host.clone();
            tokio::spawn(async move {
                let anchor = clock.now();
                let mut after = anchor;
                while let Some(at) = spec.next_after(after, anchor) {
                    let wait = clock.now().until(at);
                    tokio::select! {
                        _ = shutdown.wait_for(|stop| *stop) => return,
                        _ = tokio::time::sleep(wait) => {}
                    }
                    let payload = input
                        .replace("<aws.scheduler.scheduled-time>", &fire_time_rfc3339(at))
                        .replace(
                            "<aws.scheduler.execution-id>",
                            &uuid::Uuid::new_v4().to_string(),
                        );
                    let host = host.clone();
                    tokio::spawn(async move {
                        if let Err(e) = host.invoke(bytes::Bytes::from(payload)).await {
                            tracing::warn!(function = %host.spec().name, error = %e, "scheduled invocation failed");
                        }
                    });
                    after = at;
                }
            });
        }
    }
    Ok(())
}
