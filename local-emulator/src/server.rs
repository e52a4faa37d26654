//! Assembling the platform: template → built functions → store → dispatcher,
//! Lambda APIs and REST API on one listener.

use std::collections::{BTreeSet, HashMap};
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use durafn_runtime::clock::{Clock, SystemClock};
use durafn_runtime::dispatch::{Dispatcher, DispatcherConfig};
use durafn_runtime::store::{RetryingStore, Store};
use tokio::net::TcpListener;

use crate::api::{self, ApiState, Metrics};
use crate::lambda_api::{self, FunctionHost, FunctionSpec, Hosts, ProcessInvoker};
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
        }
    }
}

/// What the platform's parts share; the queue and schedule services start from it.
#[derive(Clone)]
pub struct Platform {
    /// The template.
    pub template: Arc<Template>,
    /// The store.
    pub store: Arc<dyn Store>,
    /// The clock.
    pub clock: Arc<dyn Clock>,
    /// Every function's host (invoke a function with `hosts[name].invoke(payload)`).
    pub hosts: Hosts,
    /// The REST API's state (dispatcher handle, token, ...).
    pub api: ApiState,
    /// Becomes `true` when the platform shuts down.
    pub shutdown: tokio::sync::watch::Receiver<bool>,
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

/// Reads the template and builds (or locates) every function's executable.
pub async fn prepare(
    config: &ServerConfig,
) -> anyhow::Result<(Template, HashMap<String, PathBuf>)> {
    let template = template::load(&config.template)?;
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

/// Runs the platform on `listener` until `shutdown` completes.
pub async fn serve(
    config: ServerConfig,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let (template, executables) = prepare(&config).await?;
    let routes = crate::http_routes::routes_of(&template)?;
    let store: Arc<dyn Store> = Arc::new(RetryingStore::new(
        durafn_runtime::store::open_async(&config.store_url)
            .await
            .with_context(|| format!("opening the store {}", config.store_url))?,
    ));
    let addr = listener.local_addr()?;
    let authority = format!("127.0.0.1:{}", addr.port());
    let store_secret = crate::store_api::new_secret();
    let handler_store = handler_store_url(&config.store_url, &authority, &store_secret);

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
        if let Ok(filter) = std::env::var("RUST_LOG") {
            env.push(("RUST_LOG".into(), filter));
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
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);

    let mut dconfig = DispatcherConfig::default();
    dconfig.poll_interval = config.poll_interval;
    let timeouts = Arc::new(timeouts);
    dconfig.timeout_for =
        Arc::new(move |f: &str| timeouts.get(f).copied().unwrap_or(Duration::from_secs(30)));
    let dispatcher = Arc::new(Dispatcher::new(
        store.clone(),
        clock.clone(),
        Arc::new(ProcessInvoker::new(hosts.clone())),
        dconfig,
    ));

    let state = ApiState {
        store: store.clone(),
        clock,
        functions: Arc::new(
            template
                .functions
                .iter()
                .map(|f| f.name.clone())
                .collect::<BTreeSet<_>>(),
        ),
        dispatch: dispatcher.handle(),
        token: config.token.as_deref().map(Arc::from),
        metrics: Arc::new(Metrics::default()),
    };
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let platform = Platform {
        template: Arc::new(template.clone()),
        store: store.clone(),
        clock: state.clock.clone(),
        hosts: hosts.clone(),
        api: state.clone(),
        shutdown: stop_rx.clone(),
    };
    let app = api::router(state.clone())
        .merge(crate::ui::router(state.clone()))
        .merge(crate::queues::start(&platform)?)
        .merge(crate::schedules::start(&platform)?)
        .merge(lambda_api::router(hosts.clone(), state.token.clone()))
        .merge(crate::store_api::router(store.clone(), &store_secret))
        .merge(crate::http_routes::router(&routes, &hosts, state)?);

    let dispatch_task = {
        let dispatcher = dispatcher.clone();
        let mut rx = stop_rx.clone();
        tokio::spawn(async move {
            dispatcher
                .run(async move {
                    let _ = rx.wait_for(|stop| *stop).await;
                })
                .await
        })
    };
    let config_idle = config.idle_timeout;
    let reaper = {
        let hosts = hosts.clone();
        tokio::spawn(async move {
            // Check often enough that a short idle timeout is honoured closely.
            let every = (config_idle / 4).clamp(Duration::from_millis(250), Duration::from_secs(5));
            loop {
                tokio::time::sleep(every).await;
                for h in hosts.values() {
                    h.reap_idle();
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
    for h in hosts.values() {
        h.kill_all();
    }
    result.map_err(Into::into)
}
