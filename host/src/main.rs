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
    // `STASK_LOG_FORMAT=json`: one JSON object per line, for journald or a log shipper.
    let json = match std::env::var("STASK_LOG_FORMAT") {
        Ok(v) if v.trim().eq_ignore_ascii_case("json") => true,
        Ok(v) if v.trim().is_empty() || v.trim().eq_ignore_ascii_case("text") => false,
        Ok(v) => {
            eprintln!(
                "error: configuration: STASK_LOG_FORMAT must be one of 'text', 'json' (any case), \
                 got '{v}'"
            );
            std::process::exit(5);
        }
        Err(_) => false,
    };
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if json {
        logs.json().init();
    } else {
        logs.init();
    }
    if let Err(e) = stask_host::cli::run(cli) {
        eprintln!("error: {}", e.message);
        std::process::exit(e.code);
    }
}
