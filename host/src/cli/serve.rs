//! `stask serve` and `stask process`.

use super::{open, CliError, CliResult};
use crate::engine::Engine;
use crate::events::EventBus;
use clap::Args;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// Flags of `stask serve` (they override `stask.toml` and the environment).
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Listen address [env: STASK_BIND; default 127.0.0.1:7878].
    #[arg(long)]
    pub bind: Option<String>,
    /// Pool size [env: STASK_WORKERS; default: CPU cores].
    #[arg(long)]
    pub workers: Option<usize>,
}

/// An exclusive lock on `storage/stask.lock`: one daemon (or cron pass) per home at a time.
struct HomeLock(#[allow(dead_code)] std::fs::File);

fn lock_home(storage: &std::path::Path) -> Result<HomeLock, CliError> {
    use std::os::fd::AsRawFd;
    std::fs::create_dir_all(storage)
        .map_err(|e| CliError::new(1, format!("cannot create {}: {e}", storage.display())))?;
    let path = storage.join("stask.lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| CliError::new(1, format!("cannot open {}: {e}", path.display())))?;
    // SAFETY: flock on a descriptor we own; no memory is involved.
    let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if rc != 0 {
        return Err(CliError::new(
            4,
            format!(
                "another stask daemon or process pass is already running on {} (lock {} is held)",
                storage.parent().unwrap_or(storage).display(),
                path.display()
            ),
        ));
    }
    Ok(HomeLock(file))
}

/// Opens everything and loads the plugins; shared by `serve` and `process`.
fn prepare(
    home: Option<PathBuf>,
    adjust: impl FnOnce(&mut crate::config::Config),
) -> Result<(Arc<Engine>, HomeLock), CliError> {
    let (mut config, store) = open(home)?;
    adjust(&mut config);
    let lock = lock_home(&config.storage_dir())?;
    let engine = Engine::new(config, store, EventBus::default());
    // Each refusal is logged by the registry with its reason.
    engine.registry.scan()?;
    let recovered = engine.recover_at_start()?;
    if recovered > 0 {
        tracing::warn!(
            tasks = recovered,
            "recovered tasks interrupted by the previous stop"
        );
    }
    Ok((engine, lock))
}

pub(super) fn serve(home: Option<PathBuf>, args: ServeArgs) -> CliResult {
    let (engine, _lock) = prepare(home, |c| {
        if let Some(bind) = args.bind {
            c.bind = bind;
        }
        if let Some(n) = args.workers {
            c.workers = n.clamp(1, 1024);
        }
    })?;
    let runtime = engine.start();
    let tokio = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("stask-http")
        .build()
        .map_err(|e| CliError::new(1, format!("cannot start the async runtime: {e}")))?;
    let served = tokio.block_on(serve_http(engine.clone()));
    let grace = Duration::from_secs(engine.config.shutdown_grace_secs);
    runtime.shutdown(grace);
    tracing::info!("stopped");
    served
}

async fn serve_http(engine: Arc<Engine>) -> CliResult {
    let bind = engine.config.bind.clone();
    let listener = tokio::net::TcpListener::bind(&bind)
        .await
        .map_err(|e| CliError::new(1, format!("cannot listen on {bind}: {e}")))?;
    let addr = listener
        .local_addr()
        .map_err(|e| CliError::new(1, e.to_string()))?;
    tracing::info!(
        workers = engine.config.workers,
        plugins = engine.registry.runnable().len(),
        store = %engine.store.describe(),
        "stask ready: listening on http://{addr}"
    );
    axum::serve(listener, crate::http::router(engine))
        .with_graceful_shutdown(shutdown_signal())
        .await
        .map_err(|e| CliError::new(1, format!("HTTP server failed: {e}")))
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => {
            let _ = ctrl_c.await;
            return;
        }
    };
    tokio::select! {
        _ = ctrl_c => {},
        _ = term.recv() => {},
    }
    tracing::info!("shutting down: no new tasks are started");
}

pub(super) fn process(home: Option<PathBuf>, batch_size: Option<usize>) -> CliResult {
    let (engine, _lock) = prepare(home, |_| {})?;
    let ran = engine.run_pass(batch_size);
    println!("processed {ran} tasks");
    Ok(())
}
