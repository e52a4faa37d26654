//! The `durafn` command line.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use durafn_runtime::clock::SystemClock;
use serde_json::{Value, json};

use crate::client::ApiClient;
use crate::server::{ServerConfig, serve};

/// Durafn: durable functions on your laptop and on your servers.
#[derive(Debug, Parser)]
#[command(name = "durafn", version, about)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, clap::Args)]
struct ClientArgs {
    /// The durafn API to talk to: `durafn dev`/`durafn server`, or a deployed
    /// stack's control API (`--endpoint https://ID.execute-api.REGION.amazonaws.com`).
    #[arg(
        long,
        visible_alias = "endpoint",
        env = "DURAFN_URL",
        default_value = "http://127.0.0.1:9000"
    )]
    url: String,
    /// The API token (for `durafn server`).
    #[arg(long, env = "DURAFN_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Print JSON instead of tables.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the template's functions locally (SQLite under --state, no setup).
    Dev {
        /// Port on 127.0.0.1.
        #[arg(long, default_value_t = 9000)]
        port: u16,
        /// Folder for local state.
        #[arg(long, default_value = ".durafn")]
        state: PathBuf,
        /// The SAM template.
        #[arg(long, default_value = "template.yaml")]
        template: PathBuf,
        /// A store URL instead of SQLite under --state (e.g. dynamodb://TABLE?endpoint=URL).
        #[arg(long)]
        store: Option<String>,
        /// The blob store for payloads over 1 MiB, up to 64 MiB (file:///PATH
        /// or s3://BUCKET/PREFIX; default: file://<state>/blobs). See docs/payloads.md.
        #[arg(long, env = "DURAFN_BLOBS")]
        blobs: Option<String>,
        /// Build the functions in release mode.
        #[arg(long)]
        release: bool,
        /// Use a prebuilt executable for a function instead of building it
        /// (`NAME=PATH`; repeatable).
        #[arg(long = "exe", value_name = "NAME=PATH")]
        exes: Vec<String>,
        /// Seconds an idle handler process is kept warm before it is stopped.
        #[arg(long, default_value_t = 300)]
        idle_timeout: u64,
        /// Play AWS: run the template's dispatcher and control functions
        /// (`Metadata.DurafnRole`) as handler processes instead of the
        /// emulator's own dispatcher, REST API and UI; their Lambda and SQS
        /// calls reach the emulator. See docs/deploy-aws.md.
        #[arg(long)]
        aws: bool,
        /// With --aws: seconds between the dispatcher function's sweeps (its
        /// template schedule says one minute).
        #[arg(long, default_value_t = 60.0, requires = "aws")]
        sweep_interval: f64,
        /// With --aws: file holding the control function's API token
        /// (default: a new random token, written to <state>/api-token).
        #[arg(long, requires = "aws")]
        token_file: Option<PathBuf>,
    },
    /// Self-host: the same platform, bound where told, API token required.
    Server {
        /// The store URL (dynamodb://TABLE?endpoint=URL&region=R, or sqlite://PATH).
        #[arg(long)]
        store: String,
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:9000")]
        bind: String,
        /// File holding the API token clients must send.
        #[arg(long)]
        token_file: PathBuf,
        /// The blob store for payloads over 1 MiB, up to 64 MiB (file:///PATH
        /// or s3://BUCKET/PREFIX). Without one, payloads are capped at 4 MiB.
        #[arg(long, env = "DURAFN_BLOBS")]
        blobs: Option<String>,
        /// The SAM template.
        #[arg(long, default_value = "template.yaml")]
        template: PathBuf,
        /// Use a prebuilt executable for a function (`NAME=PATH`; repeatable).
        #[arg(long = "exe", value_name = "NAME=PATH")]
        exes: Vec<String>,
    },
    /// Start an execution.
    Start {
        /// The function.
        function: String,
        /// The input, as JSON.
        #[arg(default_value = "null")]
        input: String,
        /// The execution name (idempotent: the same name and input start it once).
        #[arg(long)]
        name: Option<String>,
        /// Seconds to wait for it to finish.
        #[arg(long, default_value_t = 0.0)]
        wait: f64,
        /// Dispatch priority, 1 (lowest) to 5 (highest); 3 by default.
        #[arg(long)]
        priority: Option<String>,
        /// Share the function's capacity fairly with other keys when it is
        /// at its concurrency limit.
        #[arg(long)]
        fairness_key: Option<String>,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// List executions, newest first.
    List {
        /// Only this function's.
        #[arg(long)]
        function: Option<String>,
        /// Only this status (e.g. SUSPENDED).
        #[arg(long)]
        status: Option<String>,
        /// At most this many.
        #[arg(long, default_value_t = 20)]
        limit: usize,
        /// Continue from a previous page.
        #[arg(long)]
        cursor: Option<String>,
        /// Only executions whose data match: `input.PATH=VALUE`,
        /// `output.PATH=VALUE` or `attr.NAME=VALUE` (a search attribute the
        /// handler set with `ctx.set_attribute`), several joined by `;`
        /// (VALUE is JSON or a string). `attr.` is indexed (at most one per
        /// search); input/output alone scan the listing.
        #[arg(long = "where", value_name = "CONDITIONS")]
        where_: Option<String>,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Show one execution: status, input, output, what it waits on.
    Describe {
        /// The execution id.
        id: String,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Show an execution's operations in start order.
    History {
        /// The execution id.
        id: String,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Show what an execution's handler logged (`ctx.logger()`, `tracing`),
    /// each line once however often it was replayed.
    Logs {
        /// The execution id.
        id: String,
        /// Keep printing new lines until the execution ends.
        #[arg(long, short)]
        follow: bool,
        #[command(flatten)]
        client: ClientArgs,
    },

    /// Resume a FAILED or BLOCKED execution from its last checkpoint.
    Resume {
        /// The execution id.
        id: String,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Send an event to an execution (what `wait_for_event` waits for).
    SendEvent {
        /// The execution id.
        id: String,
        /// The event's name.
        name: String,
        /// The payload, as JSON.
        #[arg(default_value = "null")]
        payload: String,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Complete, fail or heartbeat a callback by its id.
    Callback {
        /// `succeed`, `fail` or `heartbeat`.
        #[arg(value_parser = ["succeed", "fail", "heartbeat"])]
        action: String,
        /// The callback id (from `durafn describe` or `history`).
        callback_id: String,
        /// The result (succeed) or `{"type", "message"}` (fail), as JSON.
        #[arg(default_value = "null")]
        payload: String,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Cancel an execution.
    Cancel {
        /// The execution id.
        id: String,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Pause an execution (not dispatched until unpaused: a running
    /// invocation finishes its current step and suspends; signals are still
    /// recorded), or with --function every execution of a function (new
    /// starts wait as PENDING).
    Pause {
        /// The execution id (or use --function).
        #[arg(required_unless_present = "function", conflicts_with = "function")]
        id: Option<String>,
        /// Pause this function instead.
        #[arg(long)]
        function: Option<String>,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Unpause an execution (it runs at once and catches up), or with
    /// --function a function.
    Unpause {
        /// The execution id (or use --function).
        #[arg(required_unless_present = "function", conflicts_with = "function")]
        id: Option<String>,
        /// Unpause this function instead.
        #[arg(long)]
        function: Option<String>,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// The template's schedules: `list` (default), `pause NAME`, `resume NAME`,
    /// `trigger NAME` (fire now, once).
    Schedules {
        /// What to do.
        #[arg(default_value = "list", value_parser = ["list", "pause", "resume", "trigger"])]
        action: String,
        /// The schedule (for pause, resume and trigger).
        name: Option<String>,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Write executions' journals as JSON lines (for `durafn replay-check`).
    Export {
        /// The executions (or use --function / --status).
        ids: Vec<String>,
        /// Every execution of this function.
        #[arg(long)]
        function: Option<String>,
        /// Only executions in this status (e.g. SUSPENDED).
        #[arg(long)]
        status: Option<String>,
        /// At most this many (with --function / --status).
        #[arg(long, default_value_t = 1000)]
        limit: usize,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Replay exported journals against a handler binary, without side
    /// effects; fails if any execution would become BLOCKED under it.
    ReplayCheck {
        /// The newly built handler binary.
        #[arg(long)]
        exe: PathBuf,
        /// The export (`durafn export ... > journals.jsonl`).
        journals: PathBuf,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Fork an execution from an operation: a new execution `<id>:reset-N`
    /// with the journal up to, not including, that operation.
    Reset {
        /// The execution id.
        id: String,
        /// The operation to run again (an id from `durafn history`).
        #[arg(long)]
        to_op: String,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Run an execution again from scratch: `<id>:rerun-N`, same input.
    Rerun {
        /// The execution id.
        id: String,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Create a new project: a Cargo workspace with one durable function, its
    /// test, a template.yaml for `durafn dev` and SAM, and a README.
    New {
        /// The project's name (its function, package and binary name).
        name: String,
        /// The folder to create (default: ./NAME; must not exist or be empty).
        #[arg(long)]
        dir: Option<PathBuf>,
        /// Depend on a local Durafn checkout (its `sdk/` folder) instead of
        /// the released crate `durafn = "0.1"`.
        #[arg(long)]
        sdk_path: Option<PathBuf>,
    },
}

async fn ctrl_c() {
    let _ = tokio::signal::ctrl_c().await;
    tracing::info!("shutting down");
}

fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Reads an API token file (see [`crate::auth::read_token_file`]).
fn read_token(path: &std::path::Path) -> anyhow::Result<String> {
    Ok(crate::auth::read_token_file(path)?)
}

/// The whole `durafn` program: logging, arguments, exit code.
pub fn main_entry() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// Runs the command line.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Dev {
            port,
            state,
            template,
            store,
            blobs,
            release,
            exes,
            idle_timeout,
            aws,
            sweep_interval,
            token_file,
        } => {
            std::fs::create_dir_all(&state)
                .with_context(|| format!("creating the state folder {}", state.display()))?;
            let store =
                store.unwrap_or_else(|| format!("sqlite://{}", state.join("durafn.db").display()));
            let mut config = ServerConfig::new(template, store);
            config.blobs = Some(match blobs {
                Some(url) => url,
                None => crate::payloads::default_dev_url(&state)?,
            });
            config.release = release;
            config.idle_timeout = std::time::Duration::from_secs(idle_timeout);
            if aws {
                if !(sweep_interval.is_finite() && sweep_interval >= 0.1) {
                    bail!("--sweep-interval must be at least 0.1 seconds, got {sweep_interval}");
                }
                let control_token = match token_file {
                    Some(f) => read_token(&f)?,
                    None => {
                        let token = durafn_runtime::model::new_seed();
                        let path = state.join("api-token");
                        std::fs::write(&path, &token)
                            .with_context(|| format!("writing {}", path.display()))?;
                        eprintln!(
                            "durafn dev --aws: the control API's token is in {}",
                            path.display()
                        );
                        token
                    }
                };
                config.aws = Some(crate::server::AwsMode {
                    sweep_interval: std::time::Duration::from_secs_f64(sweep_interval),
                    control_token,
                });
            }
            add_executables(&mut config, &exes)?;
            let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
                .await
                .with_context(|| format!("cannot listen on 127.0.0.1:{port} (use --port)"))?;
            // `--port 0` picks a free port: the line names the one bound.
            let port = listener.local_addr().map_or(port, |a| a.port());
            eprintln!(
                "durafn dev: http://127.0.0.1:{port}  (API /v1, try: durafn start order '{{\"order_id\": \"o-1\", \"amount_cents\": 1999}}' --wait 30)"
            );
            serve(config, Arc::new(SystemClock), listener, ctrl_c()).await
        }
        Command::Server {
            store,
            bind,
            token_file,
            blobs,
            template,
            exes,
        } => {
            let token = read_token(&token_file)?;
            let mut config = ServerConfig::new(template, store);
            config.token = Some(token);
            config.blobs = blobs.filter(|b| !b.trim().is_empty());
            add_executables(&mut config, &exes)?;
            let listener = tokio::net::TcpListener::bind(&bind)
                .await
                .with_context(|| format!("cannot listen on {bind}"))?;
            if let Ok(addr) = listener.local_addr() {
                eprintln!("durafn server: http://{addr}");
            }
            serve(config, Arc::new(SystemClock), listener, ctrl_c()).await
        }
        Command::Start {
            function,
            input,
            name,
            wait,
            priority,
            fairness_key,
            client,
        } => {
            let input: Value = serde_json::from_str(&input)
                .with_context(|| format!("the input is not valid JSON: {input}"))?;
            let mut body = json!({ "input": input, "wait": wait });
            if let Some(n) = name {
                body["name"] = json!(n);
            }
            if let Some(p) = priority {
                // As given: the server says what is wrong with it.
                body["priority"] = serde_json::from_str(&p).unwrap_or(Value::String(p));
            }
            if let Some(k) = fairness_key {
                body["fairness_key"] = json!(k);
            }
            let path = format!("/v1/functions/{}/executions", encode(&function));
            let v = call(&client, "POST", &path, Some(&body)).await?;
            print_value(&client, &v, crate::output::describe);
            Ok(())
        }
        Command::List {
            function,
            status,
            limit,
            cursor,
            where_,
            client,
        } => {
            let mut q = format!("?limit={limit}");
            if let Some(w) = where_ {
                q.push_str(&format!("&where={}", encode(&w)));
            }
            if let Some(f) = function {
                q.push_str(&format!("&function={}", encode(&f)));
            }
            if let Some(s) = status {
                q.push_str(&format!("&status={}", encode(&s)));
            }
            if let Some(c) = cursor {
                q.push_str(&format!("&cursor={}", encode(&c)));
            }
            let v = call(&client, "GET", &format!("/v1/executions{q}"), None).await?;
            print_value(&client, &v, crate::output::list);
            Ok(())
        }
        Command::Describe { id, client } => {
            let v = call(
                &client,
                "GET",
                &format!("/v1/executions/{}", encode(&id)),
                None,
            )
            .await?;
            print_value(&client, &v, crate::output::describe);
            Ok(())
        }
        Command::Logs { id, follow, client } => {
            let logs = |after: u64| format!("/v1/executions/{}/logs?after={after}", encode(&id));
            let mut after = 0;
            loop {
                let v = call(&client, "GET", &logs(after), None).await?;
                after = crate::logs::print(&v, client.json, after);
                if !follow {
                    return Ok(());
                }
                let e = call(
                    &client,
                    "GET",
                    &format!("/v1/executions/{}", encode(&id)),
                    None,
                )
                .await?;
                if crate::logs::ended(&e) {
                    // Lines of the last invocation may still be on their way.
                    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
                    let v = call(&client, "GET", &logs(after), None).await?;
                    crate::logs::print(&v, client.json, after);
                    return Ok(());
                }
                tokio::time::sleep(std::time::Duration::from_millis(500)).await;
            }
        }
        Command::History { id, client } => {
            let v = call(
                &client,
                "GET",
                &format!("/v1/executions/{}/history", encode(&id)),
                None,
            )
            .await?;
            print_value(&client, &v, crate::output::history);
            Ok(())
        }
        Command::Resume { id, client } => {
            let v = call(
                &client,
                "POST",
                &format!("/v1/executions/{}/resume", encode(&id)),
                None,
            )
            .await?;
            print_value(&client, &v, crate::output::describe);
            Ok(())
        }
        Command::SendEvent {
            id,
            name,
            payload,
            client,
        } => {
            let payload: Value = serde_json::from_str(&payload)
                .with_context(|| format!("the payload is not valid JSON: {payload}"))?;
            let path = format!("/v1/executions/{}/events/{}", encode(&id), encode(&name));
            let v = call(&client, "POST", &path, Some(&payload)).await?;
            print_value(&client, &v, |v| {
                format!(
                    "sent {} to {} (seq {})\n",
                    v["event"], v["execution_id"], v["seq"]
                )
            });
            Ok(())
        }
        Command::Callback {
            action,
            callback_id,
            payload,
            client,
        } => {
            let payload: Value = serde_json::from_str(&payload)
                .with_context(|| format!("the payload is not valid JSON: {payload}"))?;
            let path = format!("/v1/callbacks/{}/{action}", encode(&callback_id));
            let v = call(&client, "POST", &path, Some(&payload)).await?;
            print_value(&client, &v, |v| {
                format!(
                    "callback {} of {} is now {}\n",
                    v["callback"], v["execution_id"], v["status"]
                )
            });
            Ok(())
        }
        Command::Cancel { id, client } => {
            let v = call(
                &client,
                "POST",
                &format!("/v1/executions/{}/cancel", encode(&id)),
                None,
            )
            .await?;
            print_value(&client, &v, crate::output::describe);
            Ok(())
        }
        Command::Pause {
            id,
            function,
            client,
        } => pause_command(&client, "pause", id, function).await,
        Command::Unpause {
            id,
            function,
            client,
        } => pause_command(&client, "unpause", id, function).await,
        Command::Schedules {
            action,
            name,
            client,
        } => {
            let v = match (action.as_str(), name) {
                ("list", None) => call(&client, "GET", "/v1/schedules", None).await?,
                ("list", Some(n)) => {
                    call(
                        &client,
                        "GET",
                        &format!("/v1/schedules/{}", encode(&n)),
                        None,
                    )
                    .await?
                }
                (_, None) => bail!("`durafn schedules {action}` needs a schedule name"),
                (_, Some(n)) => {
                    let path = format!("/v1/schedules/{}/{action}", encode(&n));
                    call(&client, "POST", &path, None).await?
                }
            };
            print_value(&client, &v, crate::output::schedules);
            Ok(())
        }
        Command::Export {
            ids,
            function,
            status,
            limit,
            client,
        } => {
            let api = ApiClient::new(&client.url, client.token.clone());
            let sel = crate::replay_check::ExportSelection {
                ids,
                function,
                status,
                limit,
            };
            let n = crate::replay_check::export(&api, &sel, &mut std::io::stdout().lock()).await?;
            eprintln!("exported {n} execution(s)");
            Ok(())
        }
        Command::ReplayCheck {
            exe,
            journals,
            json,
        } => {
            let report = crate::replay_check::run_check(&exe, &journals).await?;
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&report).unwrap_or_default()
                );
            } else {
                print!("{}", crate::replay_check::render(&report));
            }
            let blocked = report["blocked"].as_u64().unwrap_or(0);
            if blocked > 0 {
                bail!(
                    "{blocked} execution(s) would become BLOCKED under {}",
                    exe.display()
                );
            }
            Ok(())
        }
        Command::Reset { id, to_op, client } => {
            let path = format!("/v1/executions/{}/reset", encode(&id));
            let v = call(&client, "POST", &path, Some(&json!({ "to_op": to_op }))).await?;
            print_value(&client, &v, crate::output::describe);
            Ok(())
        }
        Command::Rerun { id, client } => {
            let path = format!("/v1/executions/{}/rerun", encode(&id));
            let v = call(&client, "POST", &path, None).await?;
            print_value(&client, &v, crate::output::describe);
            Ok(())
        }
        Command::New {
            name,
            dir,
            sdk_path,
        } => {
            use crate::scaffold::{NewProject, SdkSource, create, resolve_sdk_path};
            crate::scaffold::validate_name(&name)?;
            let sdk = match sdk_path {
                Some(p) => SdkSource::Path(resolve_sdk_path(&p)?),
                None => SdkSource::Released,
            };
            let dir = dir.unwrap_or_else(|| PathBuf::from(&name));
            let project = NewProject { name, dir, sdk };
            create(&project)?;
            let d = project.dir.display();
            println!(
                "created {} in {d}\n\nnext:\n  cd {d}\n  cargo test --workspace\n  durafn dev    # then: durafn start {} '{{\"name\": \"Ada\"}}' --wait 30",
                project.name, project.name
            );
            Ok(())
        }
    }
}

fn add_executables(config: &mut ServerConfig, exes: &[String]) -> anyhow::Result<()> {
    for exe in exes {
        let Some((name, path)) = exe.split_once('=') else {
            bail!("--exe {exe:?} must look like NAME=PATH");
        };
        config
            .executables
            .insert(name.to_string(), PathBuf::from(path));
    }
    Ok(())
}

async fn call(
    args: &ClientArgs,
    method: &str,
    path: &str,
    body: Option<&Value>,
) -> anyhow::Result<Value> {
    let client = ApiClient::new(&args.url, args.token.clone());
    let (status, v) = client.call(method, path, body).await?;
    if status >= 400 {
        let msg = v["error"]["message"]
            .as_str()
            .map(str::to_string)
            .unwrap_or_else(|| v.to_string());
        let code = v["error"]["code"].as_str().unwrap_or("Error");
        bail!("{code} ({status}): {msg}");
    }
    Ok(v)
}

/// `durafn pause|unpause ID` / `--function F`.
async fn pause_command(
    client: &ClientArgs,
    action: &str,
    id: Option<String>,
    function: Option<String>,
) -> anyhow::Result<()> {
    match (id, function) {
        (_, Some(f)) => {
            let path = format!("/v1/functions/{}/{action}", encode(&f));
            let v = call(client, "POST", &path, None).await?;
            print_value(client, &v, |v| {
                let state = if v["paused"] == json!(true) {
                    "paused"
                } else {
                    "unpaused"
                };
                format!("function {} {state}\n", text_of(&v["function"]))
            });
        }
        (Some(id), None) => {
            let path = format!("/v1/executions/{}/{action}", encode(&id));
            let v = call(client, "POST", &path, None).await?;
            print_value(client, &v, crate::output::describe);
        }
        (None, None) => bail!("`durafn {action}` needs an execution id or --function F"),
    }
    Ok(())
}

fn text_of(v: &Value) -> String {
    v.as_str().map_or_else(|| v.to_string(), str::to_string)
}

fn print_value(args: &ClientArgs, v: &Value, human: fn(&Value) -> String) {
    if args.json {
        println!("{}", serde_json::to_string_pretty(v).unwrap_or_default());
    } else {
        print!("{}", human(v));
    }
}
