//! Log output: human text or one JSON object per line, on stderr, filtered by
//! `GATEWAY_LOG` (tracing's `EnvFilter` syntax, default `info`).

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;
use tracing_subscriber::filter::Directive;

use crate::cli::LogFormat;

/// The WebSocket library logs whole frames at trace level, and a `connect` frame
/// carries the token: its logs are capped, whatever `GATEWAY_LOG` asks for.
const SECRET_SAFE_CAPS: [&str; 2] = ["tungstenite=info", "tokio_tungstenite=info"];

pub fn init(format: LogFormat) {
    let mut filter =
        EnvFilter::try_from_env("GATEWAY_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    for cap in SECRET_SAFE_CAPS {
        if let Ok(directive) = cap.parse::<Directive>() {
            filter = filter.add_directive(directive);
        }
    }
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(std::io::stderr().is_terminal());
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().flatten_event(true).init(),
    }
}
