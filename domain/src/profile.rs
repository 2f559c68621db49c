//! Profiles: a name, the state directory it owns, and the lock that makes two
//! gateways on one profile impossible on any ports.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

use crate::lock_policy::Refusal;
use crate::ports::ProfileLocker;

/// The longest profile name accepted.
pub const MAX_PROFILE_NAME: usize = 64;
/// The lock file inside a profile's state directory.
pub const LOCK_FILE_NAME: &str = "gateway.lock";

/// A validated profile name: safe to use as one path component.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProfileName(String);

/// Why a profile name was refused (a usage error).
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum ProfileNameError {
    #[error("invalid profile name \"{0}\": must not be empty")]
    Empty(String),
    #[error("invalid profile name \"{0}\": must not contain a path separator or \"..\"")]
    PathLike(String),
    #[error("invalid profile name \"{0}\": longer than {MAX_PROFILE_NAME} characters")]
    TooLong(String),
    #[error("invalid profile name \"{0}\": control characters are not allowed")]
    ControlCharacter(String),
}

impl ProfileName {
    pub fn parse(name: &str) -> Result<Self, ProfileNameError> {
        let owned = || name.to_owned();
        if name.is_empty() {
            Err(ProfileNameError::Empty(owned()))
        } else if name.contains(['/', '\\']) || name.contains("..") || name == "." {
            Err(ProfileNameError::PathLike(owned()))
        } else if name.chars().count() > MAX_PROFILE_NAME {
            Err(ProfileNameError::TooLong(owned()))
        } else if name.chars().any(char::is_control) {
            Err(ProfileNameError::ControlCharacter(owned()))
        } else {
            Ok(Self(name.to_owned()))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ProfileName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Where a profile keeps its state: `--state-dir`/`GATEWAY_STATE_DIR` >
/// `$XDG_STATE_HOME/gateway/<profile>` > `~/.local/state/gateway/<profile>`.
/// `None` when none of them is known (no home directory).
pub fn state_dir(
    explicit: Option<&Path>,
    xdg_state_home: Option<&Path>,
    home: Option<&Path>,
    profile: &ProfileName,
) -> Option<PathBuf> {
    if let Some(dir) = explicit {
        return Some(dir.to_path_buf());
    }
    // XDG says a relative XDG_STATE_HOME is invalid and must be ignored.
    let base = match xdg_state_home.filter(|p| p.is_absolute()) {
        Some(xdg) => xdg.to_path_buf(),
        None => home?.join(".local").join("state"),
    };
    Some(base.join("gateway").join(profile.as_str()))
}

/// What a gateway writes into its lock file, for people to read. Nothing decides
/// anything from it except the wording of an error message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockRecord {
    pub pid: u32,
    pub url: String,
    pub port: u16,
    pub started_unix_ms: u64,
}

impl LockRecord {
    pub fn to_text(&self) -> String {
        format!(
            "pid={}\nurl={}\nport={}\nstarted_unix_ms={}\n",
            self.pid, self.url, self.port, self.started_unix_ms
        )
    }

    /// Reads what a holder wrote; `None` if it is not a complete record (the holder
    /// may be between taking the lock and writing).
    pub fn parse(text: &str) -> Option<Self> {
        let field = |key: &str| {
            text.lines()
                .find_map(|line| line.strip_prefix(key)?.strip_prefix('='))
                .map(str::trim)
        };
        Some(Self {
            pid: field("pid")?.parse().ok()?,
            url: field("url")?.to_owned(),
            port: field("port")?.parse().ok()?,
            started_unix_ms: field("started_unix_ms")?.parse().ok()?,
        })
    }
}

/// What is wrong with a state directory the gateway cannot or will not use: the text
/// after `cannot lock profile "NAME" at PATH: `, PATH being the state directory.
#[derive(Debug, thiserror::Error)]
pub enum StateDirProblem {
    /// PATH exists and is not a directory (e.g. `--state-dir /etc/passwd`).
    #[error("not a directory")]
    NotADirectory,
    /// A parent of PATH exists and is not a directory, so PATH cannot be created.
    #[error("{} is not a directory", .0.display())]
    ParentNotADirectory(PathBuf),
    /// PATH does not exist and the OS refused to create it.
    #[error("the directory does not exist and cannot be created: {0}")]
    CannotCreate(io::Error),
    /// A missing parent of PATH could not be created.
    #[error("the directory does not exist and its parent {} cannot be created: {source}", .parent.display())]
    CannotCreateParent { parent: PathBuf, source: io::Error },
    /// PATH is a symbolic link that neither the gateway's user nor root made: whoever
    /// made it chose where the gateway would write.
    #[error(
        "a symbolic link owned by uid {owner}, neither this user (uid {user}) nor root; \
         use the directory it points to, or a directory of your own"
    )]
    UntrustedSymlink { owner: u32, user: u32 },
    /// The directory belongs to another user, who could replace what is in it.
    #[error(
        "owned by uid {owner}, not by this gateway's user (uid {user}); \
         use a state directory of your own"
    )]
    NotOwned { owner: u32, user: u32 },
    /// The group or others may write in the directory, so they could replace the lock
    /// file (e.g. by a symbolic link to a file of the gateway's user).
    #[error(
        "writable by group or others (mode {mode:04o}); remove their write access \
         (chmod go-w) or use another directory"
    )]
    WritableByOthers { mode: u32 },
    /// `gateway.lock` is a symbolic link: writing through it would write wherever it points.
    #[error("{LOCK_FILE_NAME} is a symbolic link; remove it (the gateway recreates it)")]
    LockFileIsSymlink,
    /// `gateway.lock` is not a plain file (a directory, a FIFO, a device...).
    #[error("{LOCK_FILE_NAME} is not a regular file; remove it (the gateway recreates it)")]
    LockFileNotRegular,
    /// Opening, locking or writing `gateway.lock` failed.
    #[error("{LOCK_FILE_NAME}: {0}")]
    LockFile(io::Error),
    /// Looking at the directory itself failed.
    #[error("{0}")]
    Io(io::Error),
}

/// Why a profile lock was not taken.
#[derive(Debug, thiserror::Error)]
pub enum ProfileLockFailure {
    /// Another process holds the lock; its record, when readable.
    #[error("profile lock is held")]
    Held { holder: Option<LockRecord> },
    /// The state directory or lock file could not, or must not, be used. Nothing was
    /// written in it.
    #[error("{}: {problem}", .path.display())]
    Unavailable {
        /// The state directory.
        path: PathBuf,
        problem: StateDirProblem,
    },
}

impl ProfileLockFailure {
    /// The lock error a start refused by this failure reports.
    pub fn into_lock_error(self, profile: &ProfileName) -> crate::GatewayLockError {
        match self {
            Self::Held { holder } => crate::GatewayLockError::ProfileInUse {
                profile: profile.to_string(),
                holder_url: holder
                    .as_ref()
                    .map_or_else(|| "an unknown address".to_owned(), |h| h.url.clone()),
                holder_pid: holder.as_ref().map(|h| h.pid),
                holder_port: holder.as_ref().map(|h| h.port),
            },
            Self::Unavailable { path, problem } => crate::GatewayLockError::ProfileUnavailable {
                profile: profile.to_string(),
                path: path.display().to_string(),
                // The lock error carries an `io::Error`; ours prints as the problem itself.
                source: match problem {
                    StateDirProblem::Io(source) => source,
                    problem => io::Error::other(problem),
                },
            },
        }
    }
}

/// Takes the profile's lock, once the port is held. A refusal carries the
/// `profile "NAME" is already in use ...` line (docs/reference.md#refusals).
pub fn take_profile_lock<L: ProfileLocker>(
    locker: &L,
    profile: &ProfileName,
    state_dir: &Path,
    record: &LockRecord,
) -> Result<L::Guard, Refusal> {
    locker
        .acquire(state_dir, record)
        .map_err(|failure| Refusal {
            error: failure.into_lock_error(profile),
            holder: None,
            owners: None,
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exit_code::ExitCode;
    use mockall::mock;

    #[test]
    fn ordinary_names_are_accepted() {
        for name in [
            "default",
            "dev",
            "work-2",
            "a.b",
            "ünïcode",
            &"x".repeat(64),
        ] {
            assert!(ProfileName::parse(name).is_ok(), "{name}");
        }
    }

    #[test]
    fn unsafe_names_are_refused() {
        assert!(matches!(
            ProfileName::parse(""),
            Err(ProfileNameError::Empty(_))
        ));
        for name in ["a/b", "..", "a..b", "/abs", "back\\slash", "."] {
            assert!(
                matches!(ProfileName::parse(name), Err(ProfileNameError::PathLike(_))),
                "{name}"
            );
        }
        assert!(matches!(
            ProfileName::parse(&"x".repeat(65)),
            Err(ProfileNameError::TooLong(_))
        ));
        assert!(matches!(
            ProfileName::parse("a\nb"),
            Err(ProfileNameError::ControlCharacter(_))
        ));
    }

    #[test]
    fn state_dir_precedence() {
        let p = ProfileName::parse("dev").unwrap();
        let explicit = Path::new("/srv/gw");
        let xdg = Path::new("/xdg");
        let home = Path::new("/home/u");
        assert_eq!(
            state_dir(Some(explicit), Some(xdg), Some(home), &p).unwrap(),
            explicit
        );
        assert_eq!(
            state_dir(None, Some(xdg), Some(home), &p).unwrap(),
            Path::new("/xdg/gateway/dev")
        );
        assert_eq!(
            state_dir(None, None, Some(home), &p).unwrap(),
            Path::new("/home/u/.local/state/gateway/dev")
        );
        assert_eq!(
            state_dir(None, Some(Path::new("rel")), Some(home), &p).unwrap(),
            Path::new("/home/u/.local/state/gateway/dev")
        );
        assert_eq!(state_dir(None, None, None, &p), None);
    }

    #[test]
    fn lock_record_round_trips_and_tolerates_partial_files() {
        let r = LockRecord {
            pid: 12,
            url: "ws://127.0.0.1:5000".into(),
            port: 5000,
            started_unix_ms: 99,
        };
        assert_eq!(LockRecord::parse(&r.to_text()), Some(r));
        assert_eq!(LockRecord::parse(""), None);
        assert_eq!(LockRecord::parse("pid=12\n"), None);
    }

    mock! {
        Locker {}
        impl ProfileLocker for Locker {
            type Guard = ();
            fn acquire(&self, dir: &Path, record: &LockRecord) -> Result<(), ProfileLockFailure>;
            fn current_holder(&self, dir: &Path) -> Option<LockRecord>;
        }
    }

    fn record() -> LockRecord {
        LockRecord {
            pid: 99,
            url: "ws://127.0.0.1:4001".into(),
            port: 4001,
            started_unix_ms: 0,
        }
    }

    fn profile() -> ProfileName {
        ProfileName::parse("work").unwrap()
    }

    #[test]
    fn a_free_profile_is_locked_in_its_state_dir() {
        let mut locker = MockLocker::new();
        locker
            .expect_acquire()
            .withf(|dir, record| dir == Path::new("/state/work") && record.pid == 99)
            .once()
            .returning(|_, _| Ok(()));
        assert!(
            take_profile_lock(&locker, &profile(), Path::new("/state/work"), &record()).is_ok()
        );
    }

    #[test]
    fn a_profile_held_by_another_gateway_exits_78_naming_it() {
        let mut locker = MockLocker::new();
        locker.expect_acquire().returning(|_, _| {
            Err(ProfileLockFailure::Held {
                holder: Some(LockRecord {
                    pid: 4242,
                    url: "ws://127.0.0.1:5000".into(),
                    port: 5000,
                    started_unix_ms: 0,
                }),
            })
        });
        let refusal =
            take_profile_lock(&locker, &profile(), Path::new("/s"), &record()).unwrap_err();
        assert_eq!(refusal.exit_code(), ExitCode::Refused);
        let lines = refusal.report_lines();
        assert_eq!(
            lines[0],
            "GatewayLockError: profile \"work\" is already in use by the gateway on ws://127.0.0.1:5000 (pid 4242)"
        );
        assert!(
            lines[1].contains("gateway stop --port 5000"),
            "{}",
            lines[1]
        );
    }

    #[test]
    fn a_profile_held_by_an_unreadable_holder_says_so() {
        let mut locker = MockLocker::new();
        locker
            .expect_acquire()
            .returning(|_, _| Err(ProfileLockFailure::Held { holder: None }));
        let refusal =
            take_profile_lock(&locker, &profile(), Path::new("/s"), &record()).unwrap_err();
        assert_eq!(refusal.exit_code(), ExitCode::Refused);
        assert_eq!(
            refusal.report_lines()[0],
            "GatewayLockError: profile \"work\" is already in use by the gateway on an unknown address (pid unknown)"
        );
    }

    #[test]
    fn an_unusable_state_dir_is_a_runtime_failure() {
        let mut locker = MockLocker::new();
        locker.expect_acquire().returning(|dir, _| {
            Err(ProfileLockFailure::Unavailable {
                path: dir.to_path_buf(),
                problem: StateDirProblem::Io(io::Error::from(io::ErrorKind::PermissionDenied)),
            })
        });
        let refusal =
            take_profile_lock(&locker, &profile(), Path::new("/s"), &record()).unwrap_err();
        assert_eq!(refusal.exit_code(), ExitCode::RuntimeFailure);
        assert!(
            refusal.report_lines()[0]
                .starts_with("GatewayLockError: cannot lock profile \"work\" at /s: ")
        );
    }

    /// The refusal line for `problem` in state directory `/s`.
    fn refusal_line(problem: StateDirProblem) -> String {
        ProfileLockFailure::Unavailable {
            path: PathBuf::from("/s"),
            problem,
        }
        .into_lock_error(&profile())
        .headline()
    }

    #[test]
    fn a_state_dir_someone_else_controls_is_refused_saying_what_is_wrong() {
        let head = "GatewayLockError: cannot lock profile \"work\" at /s: ";
        assert_eq!(
            refusal_line(StateDirProblem::WritableByOthers { mode: 0o777 }),
            format!(
                "{head}writable by group or others (mode 0777); remove their write access \
                 (chmod go-w) or use another directory"
            )
        );
        assert_eq!(
            refusal_line(StateDirProblem::NotOwned {
                owner: 65534,
                user: 0
            }),
            format!(
                "{head}owned by uid 65534, not by this gateway's user (uid 0); \
                 use a state directory of your own"
            )
        );
        assert_eq!(
            refusal_line(StateDirProblem::LockFileIsSymlink),
            format!("{head}gateway.lock is a symbolic link; remove it (the gateway recreates it)")
        );
    }

    #[test]
    fn a_state_dir_that_cannot_be_a_directory_says_so() {
        let head = "GatewayLockError: cannot lock profile \"work\" at /s: ";
        assert_eq!(
            refusal_line(StateDirProblem::NotADirectory),
            format!("{head}not a directory")
        );
        assert_eq!(
            refusal_line(StateDirProblem::ParentNotADirectory("/etc/passwd".into())),
            format!("{head}/etc/passwd is not a directory")
        );
        assert!(
            refusal_line(StateDirProblem::CannotCreate(io::Error::from(
                io::ErrorKind::PermissionDenied
            )))
            .starts_with(&format!(
                "{head}the directory does not exist and cannot be created: "
            ))
        );
    }
}
