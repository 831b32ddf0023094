//! `stask dev`: the plugin development loop. Builds every crate in `plugins/`, installs the
//! libraries into plugins.d/, then rebuilds and reinstalls a crate whenever one of its files is
//! saved, while the daemon serves (and hot-reloads) in the same process.

use super::serve::{serve, ServeArgs};
use super::{CliError, CliResult};
use notify::{RecursiveMode, Watcher};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Quiet time after the last saved file before a rebuild (editors write several files).
const DEBOUNCE: Duration = Duration::from_millis(200);

/// A plugin crate of the workspace.
#[derive(Debug, Clone)]
struct PluginCrate {
    dir: PathBuf,
    package: String,
    lib_name: String,
}

/// Flags of `stask dev`.
#[derive(Debug, clap::Args)]
pub struct DevArgs {
    /// The workspace holding `plugins/` [default: current directory].
    #[arg(long)]
    pub workspace: Option<PathBuf>,
    /// Build plugins in release mode.
    #[arg(long)]
    pub release: bool,
    /// Daemon flags.
    #[command(flatten)]
    pub serve: ServeArgs,
}

pub(super) fn dev(home: Option<PathBuf>, args: DevArgs) -> CliResult {
    let workspace = match args.workspace {
        Some(w) => w,
        None => std::env::current_dir().map_err(|e| CliError::new(1, e.to_string()))?,
    };
    let crates = plugin_crates(&workspace.join("plugins"))?;
    if crates.is_empty() {
        return Err(CliError::new(
            3,
            format!(
                "no plugin crates in {}",
                workspace.join("plugins").display()
            ),
        ));
    }
    let config = crate::config::Config::load(home.clone())?;
    let builder = Builder {
        workspace: workspace.clone(),
        release: args.release,
        plugins_dir: config.plugins_dir.clone(),
    };
    for c in &crates {
        builder.build_and_install(c)?;
    }
    let (tx, rx) = mpsc::channel();
    let mut watcher = notify::recommended_watcher(move |e| {
        let _ = tx.send(e);
    })
    .map_err(|e| CliError::new(1, format!("cannot watch plugins/: {e}")))?;
    watcher
        .watch(&workspace.join("plugins"), RecursiveMode::Recursive)
        .map_err(|e| CliError::new(1, format!("cannot watch plugins/: {e}")))?;
    std::thread::Builder::new()
        .name("stask-dev-rebuild".into())
        .spawn(move || rebuild_loop(&builder, &crates, &rx))
        .map_err(|e| CliError::new(1, e.to_string()))?;
    tracing::info!("dev loop: editing a file under plugins/ rebuilds and reloads that worker");
    let result = serve(home, args.serve);
    drop(watcher);
    result
}

fn rebuild_loop(
    builder: &Builder,
    crates: &[PluginCrate],
    rx: &mpsc::Receiver<notify::Result<notify::Event>>,
) {
    let mut due: HashMap<usize, Instant> = HashMap::new();
    loop {
        let wait = due
            .values()
            .map(|d| d.saturating_duration_since(Instant::now()))
            .min()
            .unwrap_or(Duration::from_secs(3600));
        match rx.recv_timeout(wait) {
            Ok(Ok(event)) if !matches!(event.kind, notify::EventKind::Access(_)) => {
                for path in &event.paths {
                    let source = path.components().all(|c| c.as_os_str() != "target")
                        && path.extension().is_some_and(|e| e == "rs" || e == "toml");
                    if let Some(i) = crates
                        .iter()
                        .position(|c| path.starts_with(&c.dir))
                        .filter(|_| source)
                    {
                        due.insert(i, Instant::now() + DEBOUNCE);
                    }
                }
            }
            Ok(_) | Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => return,
        }
        let now = Instant::now();
        let ready: Vec<usize> = due
            .iter()
            .filter(|(_, d)| **d <= now)
            .map(|(i, _)| *i)
            .collect();
        for i in ready {
            due.remove(&i);
            let started = Instant::now();
            match builder.build_and_install(&crates[i]) {
                Ok(()) => tracing::info!(
                    package = %crates[i].package,
                    "rebuilt and installed in {:.1}s",
                    started.elapsed().as_secs_f64()
                ),
                Err(e) => {
                    tracing::warn!(package = %crates[i].package, "rebuild failed: {}", e.message)
                }
            }
        }
    }
}

struct Builder {
    workspace: PathBuf,
    release: bool,
    plugins_dir: PathBuf,
}

impl Builder {
    fn build_and_install(&self, c: &PluginCrate) -> CliResult {
        let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
        cmd.current_dir(&self.workspace)
            .args(["build", "--quiet", "-p", &c.package]);
        if self.release {
            cmd.arg("--release");
        }
        let status = cmd
            .status()
            .map_err(|e| CliError::new(1, format!("cannot run cargo: {e}")))?;
        if !status.success() {
            return Err(CliError::new(
                1,
                format!("cargo build -p {} failed", c.package),
            ));
        }
        let target = std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| self.workspace.join("target"));
        let file = format!("lib{}.so", c.lib_name);
        let built = target
            .join(if self.release { "release" } else { "debug" })
            .join(&file);
        install(&built, &self.plugins_dir, &file)
    }
}

/// Copies `built` into plugins.d/ as `name` through a hidden temp file and a rename, so the
/// daemon never sees a partial file and an unchanged build is not reloaded.
fn install(built: &Path, plugins_dir: &Path, name: &str) -> CliResult {
    let io = |what: &str, e: std::io::Error| CliError::new(1, format!("{what}: {e}"));
    let bytes = std::fs::read(built).map_err(|e| io(&built.display().to_string(), e))?;
    let dest = plugins_dir.join(name);
    if std::fs::read(&dest).is_ok_and(|old| old == bytes) {
        return Ok(());
    }
    std::fs::create_dir_all(plugins_dir).map_err(|e| io("plugins.d", e))?;
    let tmp = plugins_dir.join(format!(".{name}.tmp"));
    std::fs::write(&tmp, &bytes).map_err(|e| io("writing the new library", e))?;
    std::fs::rename(&tmp, &dest).map_err(|e| io("installing the new library", e))
}

/// The `cdylib` crates under `plugins/`.
fn plugin_crates(dir: &Path) -> Result<Vec<PluginCrate>, CliError> {
    let entries =
        std::fs::read_dir(dir).map_err(|e| CliError::new(3, format!("{}: {e}", dir.display())))?;
    let mut crates = Vec::new();
    for entry in entries.flatten() {
        let manifest = entry.path().join("Cargo.toml");
        let Ok(text) = std::fs::read_to_string(&manifest) else {
            continue;
        };
        let parsed: toml::Value = toml::from_str(&text)
            .map_err(|e| CliError::new(5, format!("{}: {e}", manifest.display())))?;
        let Some(package) = parsed
            .get("package")
            .and_then(|p| p.get("name"))
            .and_then(|n| n.as_str())
        else {
            continue;
        };
        let lib_name = parsed
            .get("lib")
            .and_then(|l| l.get("name"))
            .and_then(|n| n.as_str())
            .map(str::to_owned)
            .unwrap_or_else(|| package.replace('-', "_"));
        crates.push(PluginCrate {
            dir: entry.path(),
            package: package.to_owned(),
            lib_name,
        });
    }
    crates.sort_by(|a, b| a.package.cmp(&b.package));
    Ok(crates)
}
