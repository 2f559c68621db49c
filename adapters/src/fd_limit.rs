//! The open-files limit: raised from the soft to the hard limit at start-up, so that
//! `--max-connections`, not EMFILE, is what bounds the clients (the common soft
//! default, 1024, is no more than the default cap itself).

use std::io;

use nix::sys::resource::{Resource, getrlimit, setrlimit};

/// Descriptors the gateway needs besides client connections: listeners, the epoll
/// instance, the profile lock, stdio, the runtime's own.
pub const RESERVED_DESCRIPTORS: u64 = 64;

/// Raises the soft `RLIMIT_NOFILE` to the hard limit; returns the limit in force.
pub fn raise_open_files_limit() -> io::Result<u64> {
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).map_err(io::Error::from)?;
    if soft >= hard {
        return Ok(soft);
    }
    setrlimit(Resource::RLIMIT_NOFILE, hard, hard).map_err(io::Error::from)?;
    Ok(hard)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_soft_limit_ends_at_the_hard_limit() {
        let limit = raise_open_files_limit().unwrap();
        let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).unwrap();
        assert_eq!(soft, hard);
        assert_eq!(limit, soft);
    }
}
