//! The fail-fast floors: `bench/floor/bind_floor.c`, compiled with `cc` at bench time
//! and timed beside each target's refused start. One program, two modes: *bind* only
//! binds the port (as the gateway does) and exits on EADDRINUSE; *bind + probe* also
//! does the rest of a refused start's work, one `/healthz` probe of the holder.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// What the floor program does after its refused bind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Nothing: exit 78 at once.
    Bind,
    /// Print the first line, probe the holder's `/healthz` (connect, request, read the
    /// answer, check it is a gateway's), print a detail line, exit 78.
    BindProbe,
}

/// The compiled floor program.
pub struct Floor {
    binary: PathBuf,
}

impl Floor {
    /// Compiles `source` into `binary` with `cc -O2` (`CC` overrides the compiler).
    pub fn compile(source: &Path, binary: &Path) -> Result<Self, String> {
        let cc = std::env::var_os("CC").unwrap_or_else(|| "cc".into());
        let output = Command::new(&cc)
            .args(["-O2", "-Wall", "-o"])
            .arg(binary)
            .arg(source)
            .output()
            .map_err(|e| format!("cannot run {}: {e}", cc.to_string_lossy()))?;
        if !output.status.success() {
            return Err(format!(
                "{} failed on {}: {}",
                cc.to_string_lossy(),
                source.display(),
                String::from_utf8_lossy(&output.stderr).trim()
            ));
        }
        Ok(Self {
            binary: binary.to_owned(),
        })
    }

    /// Exec -> exit of one refused start on `port` (which a gateway must hold).
    pub fn refused_start(&self, mode: Mode, port: u16) -> Duration {
        let started = Instant::now();
        let mut command = Command::new(&self.binary);
        if mode == Mode::BindProbe {
            command.arg("--probe");
        }
        let status = command
            .arg(port.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("run the floor program");
        let elapsed = started.elapsed();
        assert_eq!(
            status.code(),
            Some(78),
            "the floor's refused start ({mode:?}) exits 78"
        );
        elapsed
    }
}
