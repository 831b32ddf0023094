//! `stask serve` and `stask process`.

use super::{lock_home, open, service_manager, CliError, CliResult, HomeLock};
use crate::engine::Engine;
use crate::events::EventBus;
use crate::plugins::copies::CopiesCleanup;
use crate::plugins::PluginWatcher;
use clap::Args;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;

/// Flags of `stask serve` (they override `stask.toml` and the environment).
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Listen address [env: STASK_BIND; default 127.0.0.1:7878].
    #[arg(long)]
    pub bind: Option<String>,
    /// Pool size, 1-1024 [env: STASK_WORKERS; default: CPU cores].
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..=1024))]
    pub workers: Option<u16>,
}

/// What keeps a prepared host alive.
struct Prepared {
    engine: Arc<Engine>,
    _watcher: Option<PluginWatcher>,
    /// Deletes this process's library copies at exit; dropped before the lock is released.
    _copies: CopiesCleanup,
    _lock: HomeLock,
}

/// Opens everything and loads the plugins; shared by `serve` and `process`. With `watch`, the
/// folder watch starts before the scan, so no change between the two is missed.
fn prepare(
    home: Option<PathBuf>,
    adjust: impl FnOnce(&mut crate::config::Config),
    watch: bool,
) -> Result<Prepared, CliError> {
    let (mut config, store) = open(home)?;
    adjust(&mut config);
    let lock = lock_home(&config.storage_dir())?;
    let engine = Engine::new(config, store, EventBus::default());
    // Copies an earlier daemon left (killed before its exit) are stale: each load makes its own.
    let copies = engine.registry.claim_copies();
    let watcher = if watch {
        let waker = engine.clone();
        let watcher = crate::plugins::watch::watch(engine.registry.clone(), move || waker.wake())
            .map_err(|e| {
            CliError::new(
                1,
                format!("cannot watch {}: {e}", engine.config.plugins_dir.display()),
            )
        })?;
        Some(watcher)
    } else {
        None
    };
    // Each refusal is logged by the registry with its reason.
    engine.registry.scan()?;
    let recovered = engine.recover_at_start()?;
    if recovered > 0 {
        tracing::warn!(
            tasks = recovered,
            "recovered tasks interrupted by the previous stop"
        );
    }
    Ok(Prepared {
        engine,
        _watcher: watcher,
        _copies: copies,
        _lock: lock,
    })
}

pub(crate) fn serve(home: Option<PathBuf>, args: ServeArgs) -> CliResult {
    let prepared = prepare(
        home,
        |c| {
            if let Some(bind) = args.bind {
                c.bind = bind;
            }
            if let Some(n) = args.workers {
                c.workers = usize::from(n);
            }
        },
        true,
    )?;
    let engine = prepared.engine.clone();
    // After the plugin scan, so that each entry's worker and action are checked.
    engine.load_config_schedules(&engine.config.schedules);
    let tokio = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("stask-http")
        .build()
        .map_err(|e| CliError::new(1, format!("cannot start the async runtime: {e}")))?;
    let (runtime, served) = tokio.block_on(async {
        // Signal handlers first: a SIGTERM right after the ready line must be a clean stop.
        let signals = Signals::install()?;
        let listener = bind(&engine.config.bind).await?;
        let runtime = engine.start();
        let served = serve_http(engine.clone(), listener, signals).await;
        Ok::<_, CliError>((runtime, served))
    })?;
    // Every request was answered: what the audit log queued is stored before the store closes.
    engine.close_audit();
    let grace = Duration::from_secs(engine.config.shutdown_grace_secs);
    runtime.shutdown(grace);
    // After the last outcome is stored: SQLite folds its WAL into the database and empties it.
    engine.store.close();
    tracing::info!("stopped");
    served
}

async fn bind(addr: &str) -> Result<tokio::net::TcpListener, CliError> {
    tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| CliError::new(1, format!("cannot listen on {addr}: {e}")))
}

async fn serve_http(
    engine: Arc<Engine>,
    listener: tokio::net::TcpListener,
    signals: Signals,
) -> CliResult {
    let addr = listener
        .local_addr()
        .map_err(|e| CliError::new(1, e.to_string()))?;
    tracing::info!(
        workers = engine.config.workers,
        plugins = engine.registry.runnable().len(),
        store = %engine.store.describe(),
        "stask ready: listening on http://{addr}"
    );
    service_manager::ready(&addr);
    service_manager::spawn_watchdog();
    let header_timeout = Duration::from_secs(engine.config.header_timeout_secs);
    let (stop, stopping) = tokio::sync::watch::channel(false);
    let app = crate::http::router(engine, stopping);
    // hyper's own connection loop rather than `axum::serve`, which sets no timer: without one
    // a client that sends its headers a byte at a time (slowloris) holds a connection forever.
    // The header read timeout also closes keep-alive connections idle for that long.
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(header_timeout);
    let connections = GracefulShutdown::new();
    let stop_signal = signals.recv();
    tokio::pin!(stop_signal);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors and the like: wait a little rather than spin.
                    tracing::warn!("cannot accept a connection: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut stop_signal => {
                service_manager::stopping();
                break;
            }
        };
        // The client's address, for the audit log.
        let service = TowerToHyperService::new(tower::Layer::layer(
            &axum::Extension(axum::extract::ConnectInfo(peer)),
            app.clone(),
        ));
        // hyper's own answers to unparsable requests get the JSON error body on their way out.
        let stream = crate::http::protocol_errors::JsonProtocolErrors::new(stream);
        let connection = connections.watch(http.serve_connection(TokioIo::new(stream), service));
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!("connection ended with an error: {e}");
            }
        });
    }
    drop(listener);
    // Endless responses (event streams) end first, then every open connection finishes.
    let _ = stop.send(true);
    connections.shutdown().await;
    Ok(())
}

/// SIGTERM and Ctrl-C, listened to from installation on.
struct Signals {
    term: tokio::signal::unix::Signal,
    interrupt: tokio::signal::unix::Signal,
}

impl Signals {
    fn install() -> Result<Signals, CliError> {
        use tokio::signal::unix::{signal, SignalKind};
        let install = |kind| {
            signal(kind)
                .map_err(|e| CliError::new(1, format!("cannot install signal handlers: {e}")))
        };
        Ok(Signals {
            term: install(SignalKind::terminate())?,
            interrupt: install(SignalKind::interrupt())?,
        })
    }

    async fn recv(mut self) {
        tokio::select! {
            _ = self.term.recv() => {},
            _ = self.interrupt.recv() => {},
        }
        tracing::info!("shutting down: no new tasks are started");
    }
}

pub(super) fn process(home: Option<PathBuf>, batch_size: Option<usize>) -> CliResult {
    let prepared = prepare(home, |_| {}, false)?;
    let engine = prepared.engine.clone();
    let ran = engine.run_pass(batch_size);
    outln!("processed {ran} tasks");
    Ok(())
}
