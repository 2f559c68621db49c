//! The control socket of `gateway restart`: a Unix socket in Linux's abstract
//! namespace, found through the process that holds the port (the socket is one of
//! its descriptors), never through a path. So `gateway restart --port N` reaches the
//! gateway that holds N whatever its state directory (and however long its path:
//! a socket path is limited to 108 bytes), and can never reach another one.
//!
//! An abstract socket has no file permissions: the gateway checks each caller's
//! credentials (`SO_PEERCRED`) and serves only its own user (and root). Finding the
//! socket needs `/proc/PID/fd` of the gateway, which only its user (or root) can read.
//! Never HTTP: any local process or browser page can call that.

use std::collections::HashSet;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::SocketAddr;
use std::time::Duration;

use gateway_domain::handoff::RestartAnswer;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};

/// The start of every control socket's abstract name: `gateway-control/PORT/PID`.
const NAME_PREFIX: &str = "gateway-control/";
/// The one request there is.
const RESTART_REQUEST: &str = "restart";
/// How long a client has to say what it wants.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(1);
/// Longest request line read.
const MAX_REQUEST: u64 = 64;
/// `__SO_ACCEPTCON` in `/proc/net/unix`'s flags: a listening socket.
const LISTENING_FLAG: u32 = 0x0001_0000;

/// The gateway's listening control socket.
#[derive(Debug)]
pub struct ControlSocket {
    listener: UnixListener,
}

impl ControlSocket {
    /// Binds a fresh abstract socket named after `port` and this process. Nothing
    /// on disk: nothing to replace, nothing left behind.
    pub fn bind(port: u16) -> io::Result<Self> {
        let name = format!("{NAME_PREFIX}{port}/{}", std::process::id());
        let address = SocketAddr::from_abstract_name(name.as_bytes())?;
        let listener = std::os::unix::net::UnixListener::bind_addr(&address)?;
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

    /// The next well-formed restart request from this gateway's user (or root).
    /// Other users, malformed and silent clients are dropped, each within
    /// [`REQUEST_TIMEOUT`].
    pub async fn next_request(&self) -> RestartCall {
        let own_uid = nix::unistd::geteuid().as_raw();
        loop {
            let Ok((stream, _)) = self.listener.accept().await else {
                continue;
            };
            let allowed = stream
                .peer_cred()
                .is_ok_and(|peer| peer.uid() == own_uid || peer.uid() == 0);
            if !allowed {
                tracing::warn!("a restart request from another user was refused");
                continue;
            }
            let mut reader = BufReader::new(stream);
            let mut line = String::new();
            let read = tokio::time::timeout(
                REQUEST_TIMEOUT,
                (&mut reader).take(MAX_REQUEST).read_line(&mut line),
            )
            .await;
            if matches!(read, Ok(Ok(_))) && line.trim() == RESTART_REQUEST {
                return RestartCall {
                    stream: reader.into_inner(),
                };
            }
        }
    }
}

/// A `gateway restart` waiting for its answer.
#[derive(Debug)]
pub struct RestartCall {
    stream: UnixStream,
}

impl RestartCall {
    /// Sends the answer; a client that went away is no one's problem.
    pub async fn answer(mut self, answer: &RestartAnswer) {
        let mut line = serde_json::to_string(answer).unwrap_or_default();
        line.push('\n');
        let _ = tokio::time::timeout(REQUEST_TIMEOUT, self.stream.write_all(line.as_bytes())).await;
    }
}

/// Why `gateway restart` could not ask.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    /// `/proc/PID/fd` could not be read (another user's gateway, or no `/proc`).
    #[error("cannot look at the descriptors of pid {pid}: {source}")]
    Hidden { pid: u32, source: io::Error },
    /// The process holds no control socket (it could not bind one at start).
    #[error("gateway pid {pid} has no control socket")]
    Missing { pid: u32 },
    /// Connecting, sending or reading failed.
    #[error("cannot talk to the control socket of gateway pid {pid}: {source}")]
    Talk { pid: u32, source: io::Error },
    /// The request was taken but no answer came within the time given.
    #[error("no outcome within {}s", within.as_secs())]
    NoOutcome { within: Duration },
}

/// The abstract name of the listening control socket that process `pid` holds.
pub fn find_control_socket(pid: u32) -> Result<Vec<u8>, ControlError> {
    let hidden = |source| ControlError::Hidden { pid, source };
    let inodes = socket_inodes(pid).map_err(hidden)?;
    let table = std::fs::read_to_string("/proc/net/unix").map_err(hidden)?;
    listening_control_name(&table, &inodes).ok_or(ControlError::Missing { pid })
}

/// The inodes of the sockets among `pid`'s descriptors.
fn socket_inodes(pid: u32) -> io::Result<HashSet<u64>> {
    let mut inodes = HashSet::new();
    for entry in std::fs::read_dir(format!("/proc/{pid}/fd"))? {
        let Ok(target) = std::fs::read_link(entry?.path()) else {
            continue; // closed meanwhile
        };
        let inode = target
            .to_str()
            .and_then(|t| t.strip_prefix("socket:["))
            .and_then(|t| t.strip_suffix(']'))
            .and_then(|t| t.parse::<u64>().ok());
        inodes.extend(inode);
    }
    Ok(inodes)
}

/// In `/proc/net/unix`'s text, the abstract name of a listening control socket
/// whose inode is one of `inodes`.
fn listening_control_name(table: &str, inodes: &HashSet<u64>) -> Option<Vec<u8>> {
    // Num RefCount Protocol Flags Type St Inode Path
    table.lines().skip(1).find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let flags = u32::from_str_radix(fields.get(3)?, 16).ok()?;
        let inode: u64 = fields.get(6)?.parse().ok()?;
        let name = fields.get(7)?.strip_prefix('@')?;
        (flags & LISTENING_FLAG != 0 && inodes.contains(&inode) && name.starts_with(NAME_PREFIX))
            .then(|| name.as_bytes().to_vec())
    })
}

/// `gateway restart`'s side: asks the gateway `pid` (the checked holder of the
/// port) to restart, and waits up to `within` for the answer.
pub async fn request_restart(pid: u32, within: Duration) -> Result<RestartAnswer, ControlError> {
    let name = find_control_socket(pid)?;
    let talk = |source| ControlError::Talk { pid, source };
    let address = SocketAddr::from_abstract_name(&name).map_err(talk)?;
    let stream = std::os::unix::net::UnixStream::connect_addr(&address).map_err(talk)?;
    stream.set_nonblocking(true).map_err(talk)?;
    let mut stream = UnixStream::from_std(stream).map_err(talk)?;
    stream
        .write_all(format!("{RESTART_REQUEST}\n").as_bytes())
        .await
        .map_err(talk)?;
    let exchange = async {
        let mut line = String::new();
        BufReader::new(stream).read_line(&mut line).await?;
        serde_json::from_str::<RestartAnswer>(&line).map_err(|error| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("the gateway's answer is not understood ({error}): {line:?}"),
            )
        })
    };
    match tokio::time::timeout(within, exchange).await {
        Ok(answer) => answer.map_err(talk),
        Err(_elapsed) => Err(ControlError::NoOutcome { within }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_restart_request_gets_its_answer_and_nonsense_is_ignored() {
        // A port number no real gateway of this test run uses as a name.
        let control = ControlSocket::bind(0).unwrap();
        let server = tokio::spawn(async move {
            let request = control.next_request().await;
            request
                .answer(&RestartAnswer::Busy {
                    message: "a restart is already in progress".into(),
                })
                .await;
            control
        });
        let name = find_control_socket(std::process::id()).unwrap();
        assert_eq!(
            name,
            format!("{NAME_PREFIX}0/{}", std::process::id()).into_bytes()
        );
        // Nonsense first: dropped, and the real request is still served.
        let address = SocketAddr::from_abstract_name(&name).unwrap();
        let mut nonsense = std::os::unix::net::UnixStream::connect_addr(&address).unwrap();
        std::io::Write::write_all(&mut nonsense, b"shutdown\n").unwrap();
        let answer = request_restart(std::process::id(), Duration::from_secs(5))
            .await
            .unwrap();
        assert_eq!(
            answer,
            RestartAnswer::Busy {
                message: "a restart is already in progress".into()
            }
        );
        drop(server.await.unwrap());
    }

    #[test]
    fn a_process_without_a_control_socket_is_named_as_such() {
        // pid 1 in this sandbox holds no gateway control socket (or is hidden).
        match find_control_socket(1) {
            Err(ControlError::Missing { pid: 1 } | ControlError::Hidden { pid: 1, .. }) => {}
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn only_a_listening_control_socket_of_the_process_counts() {
        let table = "Num       RefCount Protocol Flags    Type St Inode Path\n\
            0000000000000000: 00000002 00000000 00010000 0001 01 100 @gateway-control/80/7\n\
            0000000000000000: 00000003 00000000 00000000 0001 03 101 @gateway-control/80/7\n\
            0000000000000000: 00000002 00000000 00010000 0001 01 102 @gateway-control/81/8\n\
            0000000000000000: 00000002 00000000 00010000 0001 01 103 /run/other.sock\n";
        let ours: HashSet<u64> = [101, 102, 103].into();
        assert_eq!(
            listening_control_name(table, &ours),
            Some(b"gateway-control/81/8".to_vec())
        );
        let accepted_only: HashSet<u64> = [101].into();
        assert_eq!(listening_control_name(table, &accepted_only), None);
    }
}
