//! The fail-fast floor: `bench/floor/bind_floor.c`, a program that only binds the port
//! (as the gateway does) and exits on EADDRINUSE, compiled with `cc` at bench time and
//! timed beside each target's refused start.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

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

    /// Exec -> exit of one refused bind on `port` (which something must hold).
    pub fn refused_start(&self, port: u16) -> Duration {
        let started = Instant::now();
        let status = Command::new(&self.binary)
            .arg(port.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("run the floor program");
        let elapsed = started.elapsed();
        assert_eq!(status.code(), Some(78), "the floor's refused bind exits 78");
        elapsed
    }
}
