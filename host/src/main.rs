//! The `stask` binary: parse the command line, log to stderr, run, exit with its code.

use clap::Parser;
use tracing_subscriber::EnvFilter;

fn main() {
    let cli = stask_host::cli::Cli::parse();
    // An unset or empty STASK_LOG means `info`; a filter that does not parse is refused like
    // every other configuration value (exit code 5), not replaced by the default in silence.
    let filter = match std::env::var("STASK_LOG") {
        Ok(v) if !v.trim().is_empty() => EnvFilter::try_new(v.trim()).unwrap_or_else(|e| {
            eprintln!(
                "error: configuration: STASK_LOG must be a log filter such as 'info', 'debug' \
                 or 'stask_host=debug,info', got '{v}': {e}"
            );
            std::process::exit(5);
        }),
        _ => EnvFilter::new("info"),
    };
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    if let Err(e) = stask_host::cli::run(cli) {
        eprintln!("error: {}", e.message);
        std::process::exit(e.code);
    }
}
