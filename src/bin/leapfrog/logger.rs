//! A minimal `log` backend: the library reports through `log`, the binary decides where it goes.

use std::io::Write;

struct Logger {
    level: log::LevelFilter,
    prefix: String,
    stdout: bool,
    timestamps: bool,
}

impl log::Log for Logger {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        metadata.level() <= self.level && metadata.target().starts_with("leapfrog")
    }

    fn log(&self, record: &log::Record<'_>) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let line = if self.timestamps {
            let micros = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_micros());
            format!("t={micros} {}{}\n", self.prefix, record.args())
        } else {
            format!("{}{}\n", self.prefix, record.args())
        };
        if self.stdout {
            let _ = std::io::stdout().lock().write_all(line.as_bytes());
        } else {
            let _ = std::io::stderr().lock().write_all(line.as_bytes());
        }
    }

    fn flush(&self) {
        let _ = std::io::stdout().flush();
    }
}

fn install(logger: Logger) {
    let level = logger.level;
    if log::set_boxed_logger(Box::new(logger)).is_ok() {
        log::set_max_level(level);
    }
}

/// For the command: warnings (and with `-v` everything) on stderr.
pub fn init_stderr(verbose: bool) {
    let level = if verbose {
        log::LevelFilter::Debug
    } else {
        log::LevelFilter::Warn
    };
    install(Logger {
        level,
        prefix: "leapfrog: ".into(),
        stdout: false,
        timestamps: false,
    });
}

/// For the demo app: every step on stdout, with the process id, and with
/// `LEAPFROG_LOG_TIMESTAMPS=1` the wall clock in microseconds (which, unlike
/// a monotonic clock, can be compared across the hops' execs).
pub fn init_app(name: &str) {
    install(Logger {
        level: log::LevelFilter::Info,
        prefix: format!("  [{name} pid {}] ", std::process::id()),
        stdout: true,
        timestamps: std::env::var_os("LEAPFROG_LOG_TIMESTAMPS").is_some_and(|v| v == "1"),
    });
}
