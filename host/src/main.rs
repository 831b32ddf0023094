//! The `stask` binary: parse the command line, log to stderr, run, exit with its code.

use clap::Parser;
use tracing_subscriber::EnvFilter;

fn main() {
    let cli = stask_host::cli::Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_env("STASK_LOG").unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    if let Err(e) = stask_host::cli::run(cli) {
        eprintln!("error: {}", e.message);
        std::process::exit(e.code);
    }
}
