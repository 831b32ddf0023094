//! Command output on stdout. `println!` panics when stdout is a closed pipe
//! (`stask task show 5 | head -1`: exit 101, "failed printing to stdout: Broken pipe" and a
//! backtrace); [`outln!`] ends the command quietly instead: the reader has what it wanted.

use std::io::Write;

/// Exit code when stdout was closed by its reader: success, as for a complete write (the
/// reader chose to stop reading; `head` and `grep -q` are not failures).
pub const CLOSED_STDOUT_EXIT: i32 = 0;

/// Writes one line to stdout. A closed pipe (EPIPE) exits the process quietly with
/// [`CLOSED_STDOUT_EXIT`]; any other write error exits 1 with a message on stderr.
pub fn line(args: std::fmt::Arguments<'_>) {
    let mut out = std::io::stdout().lock();
    if let Err(e) = out
        .write_fmt(format_args!("{args}\n"))
        .and_then(|()| out.flush())
    {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(CLOSED_STDOUT_EXIT);
        }
        // Writing to stderr can fail too; there is nothing left to tell then.
        let _ = writeln!(std::io::stderr(), "error: cannot write to stdout: {e}");
        std::process::exit(1);
    }
}

/// `println!` for command output, through [`line`].
macro_rules! outln {
    ($($arg:tt)*) => {
        $crate::cli::output::line(format_args!($($arg)*))
    };
}
