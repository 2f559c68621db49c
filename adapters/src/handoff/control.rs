//! The control socket of `gateway restart`: a Unix socket in the profile's state
//! directory (mode 0600 in a 0700 directory), so only the gateway's own user can ask
//! for a restart, and the answer (restarted, failed and why, busy) comes back on the
//! same connection. Never HTTP: any local process or browser page can call that.

use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;
use std::time::Duration;

use gateway_domain::handoff::RestartAnswer;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};

/// The control socket's file name in the profile's state directory.
pub const CONTROL_SOCKET_NAME: &str = "gateway.sock";
/// The one request there is.
const RESTART_REQUEST: &str = "restart";
/// How long a client has to say what it wants.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(1);
/// Longest request line read.
const MAX_REQUEST: u64 = 64;

/// The gateway's listening control socket.
#[derive(Debug)]
pub struct ControlSocket {
    listener: UnixListener,
}

impl ControlSocket {
    /// Binds `<dir>/gateway.sock`, replacing a file a previous gateway left behind.
    /// Only called while holding the profile lock, so no live gateway owns that file.
    pub fn bind(dir: &Path) -> io::Result<Self> {
        let path = dir.join(CONTROL_SOCKET_NAME);
        match std::fs::remove_file(&path) {
            Ok(()) => {}
            Err(error) if error.kind() == io::ErrorKind::NotFound => {}
            Err(error) => return Err(error),
        }
        let listener = std::os::unix::net::UnixListener::bind(&path)?;
        std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o600))?;
        listener.set_nonblocking(true)?;
        Self::adopt(listener)
    }

    /// Serves on a control socket inherited from the previous process.
    pub fn adopt(listener: std::os::unix::net::UnixListener) -> io::Result<Self> {
        Ok(Self {
            listener: UnixListener::from_std(listener)?,
        })
    }

    /// A copy of the listening descriptor, for a successor.
    pub fn descriptor(&self) -> io::Result<OwnedFd> {
        self.listener.as_fd().try_clone_to_owned()
    }

    /// The next well-formed restart request. Malformed or silent clients are
    /// dropped, each within [`REQUEST_TIMEOUT`].
    pub async fn next_request(&self) -> RestartRequest {
        loop {
            let Ok((stream, _)) = self.listener.accept().await else {
                continue;
            };
            let mut reader = BufReader::new(stream);
            let mut line = String::new();
            let read = tokio::time::timeout(
                REQUEST_TIMEOUT,
                (&mut reader).take(MAX_REQUEST).read_line(&mut line),
            )
            .await;
            if matches!(read, Ok(Ok(_))) && line.trim() == RESTART_REQUEST {
                return RestartRequest {
                    stream: reader.into_inner(),
                };
            }
        }
    }
}

/// A `gateway restart` waiting for its answer.
#[derive(Debug)]
pub struct RestartRequest {
    stream: UnixStream,
}

impl RestartRequest {
    /// Sends the answer; a client that went away is no one's problem.
    pub async fn answer(mut self, answer: &RestartAnswer) {
        let mut line = serde_json::to_string(answer).unwrap_or_default();
        line.push('\n');
        let _ = tokio::time::timeout(REQUEST_TIMEOUT, self.stream.write_all(line.as_bytes())).await;
    }
}

/// `gateway restart`'s side: asks the gateway behind `path` to restart and waits up
/// to `within` for the answer.
pub async fn request_restart(path: &Path, within: Duration) -> io::Result<RestartAnswer> {
    let exchange = async {
        let mut stream = UnixStream::connect(path).await?;
        stream
            .write_all(format!("{RESTART_REQUEST}\n").as_bytes())
            .await?;
        let mut line = String::new();
        BufReader::new(stream).read_line(&mut line).await?;
        serde_json::from_str::<RestartAnswer>(&line).map_err(|error| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("the gateway's answer is not understood ({error}): {line:?}"),
            )
        })
    };
    tokio::time::timeout(within, exchange)
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "no answer in time"))?
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir(tag: &str) -> std::path::PathBuf {
        let dir =
            std::env::temp_dir().join(format!("gateway-control-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[tokio::test]
    async fn a_restart_request_gets_its_answer_and_nonsense_is_ignored() {
        let dir = temp_dir("answer");
        let control = ControlSocket::bind(&dir).unwrap();
        let path = dir.join(CONTROL_SOCKET_NAME);
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let server = tokio::spawn(async move {
            let request = control.next_request().await;
            request
                .answer(&RestartAnswer::Busy {
                    message: "a restart is already in progress".into(),
                })
                .await;
        });
        // Nonsense first: dropped, and the real request is still served.
        let mut nonsense = UnixStream::connect(&path).await.unwrap();
        nonsense.write_all(b"shutdown\n").await.unwrap();
        let answer = request_restart(&path, Duration::from_secs(5))
            .await
            .unwrap();
        assert_eq!(
            answer,
            RestartAnswer::Busy {
                message: "a restart is already in progress".into()
            }
        );
        server.await.unwrap();
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_stale_socket_file_is_replaced() {
        let dir = temp_dir("stale");
        std::fs::write(dir.join(CONTROL_SOCKET_NAME), b"left behind").unwrap();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async { assert!(ControlSocket::bind(&dir).is_ok()) });
        let _ = std::fs::remove_dir_all(&dir);
    }
}
