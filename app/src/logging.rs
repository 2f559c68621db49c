//! Log output: human text or one JSON object per line, on stderr, filtered by
//! `GATEWAY_LOG` (tracing's `EnvFilter` syntax, default `info`).

use std::io::{IsTerminal, Write};

use tracing_subscriber::EnvFilter;
use tracing_subscriber::filter::Directive;

use crate::cli::LogFormat;

/// The WebSocket library logs whole frames at trace level, and a `connect` frame
/// carries the token: its logs are capped, whatever `GATEWAY_LOG` asks for.
const SECRET_SAFE_CAPS: [&str; 2] = ["tungstenite=info", "tokio_tungstenite=info"];

pub fn init(format: LogFormat) {
    let (mut filter, invalid) = match std::env::var("GATEWAY_LOG") {
        Err(_) => (EnvFilter::new("info"), None),
        Ok(spec) => match EnvFilter::try_new(&spec) {
            Ok(filter) => (filter, None),
            Err(error) => (EnvFilter::new("info"), Some((spec, error))),
        },
    };
    for cap in SECRET_SAFE_CAPS {
        if let Ok(directive) = cap.parse::<Directive>() {
            filter = filter.add_directive(directive);
        }
    }
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(|| LossyStderr)
        .with_target(false)
        .with_ansi(std::io::stderr().is_terminal());
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().flatten_event(true).init(),
    }
    // Said once logging works, so it comes in the chosen format; a typo in the filter
    // must not silently change what is logged.
    if let Some((spec, error)) = invalid {
        tracing::warn!("GATEWAY_LOG={spec:?} is not a valid filter ({error}); logging at info");
    }
}

/// Standard error that never fails. A log line that cannot be written is dropped: a
/// restart's new process writes through a pipe to its predecessor until it serves,
/// and if the predecessor is killed mid-way the pipe is broken. tracing-subscriber
/// reports a failed write with `eprintln!`, which panics on that same broken pipe:
/// a lost log line must not take the gateway down with it.
struct LossyStderr;

impl Write for LossyStderr {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        // A broken pipe after a handoff: the predecessor is gone, so write to the
        // service's log directly from now on, and this line there too.
        if std::io::stderr().write_all(bytes).is_err()
            && gateway_adapters::handoff::write_to_service_log()
        {
            let _ = std::io::stderr().write_all(bytes);
        }
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        let _ = std::io::stderr().flush();
        Ok(())
    }
}
