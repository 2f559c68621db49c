//! The profile lock: an exclusive advisory lock (std `File::try_lock`, `flock` on
//! Linux) on `<state dir>/gateway.lock`, held for the gateway's lifetime and released
//! by the OS on any exit.
//!
//! The state directory is opened once and checked on that descriptor (`fstat`): it must
//! belong to the effective user and not be writable by group or others. The lock file
//! is opened relative to that descriptor with `O_NOFOLLOW`, so a path swapped after the
//! check or a symbolic link named `gateway.lock` is never followed. The directory path
//! itself may end in a symbolic link only when that link belongs to the gateway's user
//! or to root (docs/security.md says why).

use gateway_domain::ports::ProfileLocker;
use std::fs::{self, DirBuilder, File, OpenOptions, TryLockError};
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::{DirBuilderExt, FileExt, MetadataExt, OpenOptionsExt};
use std::path::Path;
use std::time::{Duration, Instant};

use gateway_domain::profile::{LOCK_FILE_NAME, LockRecord, ProfileLockFailure, StateDirProblem};
use nix::errno::Errno;
use nix::fcntl::{OFlag, openat};
use nix::sys::stat::Mode;

/// How long to wait for a holder that has the lock but has not written its record
/// yet, only so the error message can name it.
const RECORD_GRACE: Duration = Duration::from_millis(50);

/// Locks profiles with a lock file in their state directory.
#[derive(Debug, Default, Clone, Copy)]
pub struct FileProfileLocker;

/// Holds the profile while alive. The file stays behind on release: its content is
/// only for people, and a later gateway overwrites it.
#[derive(Debug)]
pub struct ProfileLockGuard {
    /// The locked file. Closing it releases the lock unless another descriptor of the
    /// same open file description (a successor's, after a handoff) is still open:
    /// nothing here ever unlocks explicitly.
    file: File,
}

impl ProfileLockGuard {
    /// Holds a profile through a lock file inherited from the previous process (its
    /// lock already re-taken on that descriptor), and writes this process's record.
    pub fn adopt(file: File, record: &LockRecord) -> std::io::Result<Self> {
        // The file offset is shared with the previous process: write at 0, not at
        // wherever it left the offset.
        file.set_len(0)?;
        file.write_all_at(record.to_text().as_bytes(), 0)?;
        Ok(Self { file })
    }

    /// A copy of the locked descriptor for a successor: same open file description,
    /// so the lock is never free between the two processes.
    pub fn descriptor(&self) -> std::io::Result<std::os::fd::OwnedFd> {
        self.file.try_clone().map(std::os::fd::OwnedFd::from)
    }
}

impl ProfileLocker for FileProfileLocker {
    type Guard = ProfileLockGuard;

    fn acquire(
        &self,
        dir: &Path,
        record: &LockRecord,
    ) -> Result<ProfileLockGuard, ProfileLockFailure> {
        let unavailable = |problem| ProfileLockFailure::Unavailable {
            path: dir.to_path_buf(),
            problem,
        };
        create_private_dir(dir).map_err(unavailable)?;
        let state_dir = open_state_dir(dir).map_err(unavailable)?;
        check_private(&state_dir).map_err(unavailable)?;
        let mut file =
            open_lock_file(&state_dir, OFlag::O_RDWR | OFlag::O_CREAT).map_err(unavailable)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                return Err(ProfileLockFailure::Held {
                    holder: read_holder(&file),
                });
            }
            Err(TryLockError::Error(source)) => {
                return Err(unavailable(StateDirProblem::LockFile(source)));
            }
        }
        file.set_len(0)
            .and_then(|()| file.write_all(record.to_text().as_bytes()))
            .map_err(|source| unavailable(StateDirProblem::LockFile(source)))?;
        Ok(ProfileLockGuard { file })
    }

    fn current_holder(&self, dir: &Path) -> Option<LockRecord> {
        // Reading needs no ownership check (root may look at a user's gateway), but
        // never through a symbolic link, and never blocking on a FIFO put there.
        let state_dir = open_state_dir(dir).ok()?;
        let mut file = open_lock_file(&state_dir, OFlag::O_RDONLY | OFlag::O_NONBLOCK).ok()?;
        let mut text = String::new();
        file.read_to_string(&mut text).ok()?;
        is_flocked(&file).then(|| LockRecord::parse(&text))?
    }
}

/// The effective user id: who the gateway acts as, and who must own its state.
fn effective_uid() -> u32 {
    nix::unistd::geteuid().as_raw()
}

/// Creates `dir` and any missing parent with mode 0700. An existing `dir` is left as
/// it is (checked afterwards on its descriptor).
fn create_private_dir(dir: &Path) -> Result<(), StateDirProblem> {
    match fs::metadata(dir) {
        Ok(metadata) if metadata.is_dir() => return Ok(()),
        Ok(_) => return Err(StateDirProblem::NotADirectory),
        Err(error) if error.raw_os_error() == Some(libc::ENOTDIR) => {
            return Err(non_directory_parent(dir));
        }
        Err(error) if error.kind() == io::ErrorKind::NotFound => {}
        Err(error) => return Err(StateDirProblem::Io(error)),
    }
    // The missing directories, outermost first, so a failure names the one refused.
    let mut missing: Vec<&Path> = dir
        .ancestors()
        .take_while(|path| !path.as_os_str().is_empty() && fs::symlink_metadata(path).is_err())
        .collect();
    missing.reverse();
    for path in missing {
        if let Err(source) = DirBuilder::new().mode(0o700).create(path) {
            if fs::metadata(path).is_ok_and(|m| m.is_dir()) {
                continue; // made by someone else meanwhile: checked like any existing one
            }
            return Err(match source.raw_os_error() {
                Some(libc::ENOTDIR) => non_directory_parent(dir),
                Some(libc::EEXIST) if path == dir => StateDirProblem::NotADirectory,
                _ if path == dir => StateDirProblem::CannotCreate(source),
                _ => StateDirProblem::CannotCreateParent {
                    parent: path.to_path_buf(),
                    source,
                },
            });
        }
    }
    Ok(())
}

/// The problem when some parent of `dir` is not a directory: names that parent.
fn non_directory_parent(dir: &Path) -> StateDirProblem {
    dir.ancestors()
        .skip(1)
        .find(|path| fs::metadata(path).is_ok_and(|m| !m.is_dir()))
        .map_or(StateDirProblem::NotADirectory, |parent| {
            StateDirProblem::ParentNotADirectory(parent.to_path_buf())
        })
}

/// Opens the state directory. When its path ends in a symbolic link, the link is
/// followed only if the gateway's user or root made it: anyone else could have
/// pointed it at a directory of the gateway's user that it must not write in.
fn open_state_dir(dir: &Path) -> Result<File, StateDirProblem> {
    let link = fs::symlink_metadata(dir).map_err(StateDirProblem::Io)?;
    let user = effective_uid();
    if link.file_type().is_symlink() && link.uid() != user && link.uid() != 0 {
        return Err(StateDirProblem::UntrustedSymlink {
            owner: link.uid(),
            user,
        });
    }
    OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECTORY)
        .open(dir)
        .map_err(|error| match error.raw_os_error() {
            Some(libc::ENOTDIR) => StateDirProblem::NotADirectory,
            _ => StateDirProblem::Io(error),
        })
}

/// The rule for an existing state directory (docs/reference.md#profiles), checked on the directory
/// actually opened: owned by the effective user, not writable by group or others.
fn check_private(state_dir: &File) -> Result<(), StateDirProblem> {
    let metadata = state_dir.metadata().map_err(StateDirProblem::Io)?;
    let user = effective_uid();
    if metadata.uid() != user {
        return Err(StateDirProblem::NotOwned {
            owner: metadata.uid(),
            user,
        });
    }
    let mode = metadata.mode() & 0o7777;
    if mode & 0o022 != 0 {
        return Err(StateDirProblem::WritableByOthers { mode });
    }
    Ok(())
}

/// Opens `gateway.lock` inside the opened state directory, never through a symbolic
/// link, and only if it is a regular file.
fn open_lock_file(state_dir: &File, access: OFlag) -> Result<File, StateDirProblem> {
    let flags = access | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
    let fd: OwnedFd = openat(
        state_dir.as_fd(),
        LOCK_FILE_NAME,
        flags,
        Mode::from_bits_truncate(0o600),
    )
    .map_err(|errno| match errno {
        Errno::ELOOP => StateDirProblem::LockFileIsSymlink,
        errno => StateDirProblem::LockFile(io::Error::from(errno)),
    })?;
    let file = File::from(fd);
    let metadata = file.metadata().map_err(StateDirProblem::LockFile)?;
    if !metadata.file_type().is_file() {
        return Err(StateDirProblem::LockFileNotRegular);
    }
    Ok(file)
}

/// Whether some open file holds a `flock` on `file`'s inode, read from `/proc/locks`
/// so that looking never takes the lock.
#[cfg(target_os = "linux")]
fn is_flocked(file: &File) -> bool {
    let Ok(metadata) = file.metadata() else {
        return false;
    };
    let (major, minor) = (
        nix::sys::stat::major(metadata.dev()),
        nix::sys::stat::minor(metadata.dev()),
    );
    procfs::locks().is_ok_and(|locks| {
        locks.iter().any(|lock| {
            lock.lock_type == procfs::LockType::FLock
                && lock.inode == metadata.ino()
                && u64::from(lock.devmaj) == major
                && u64::from(lock.devmin) == minor
        })
    })
}

#[cfg(not(target_os = "linux"))]
fn is_flocked(_file: &File) -> bool {
    false
}

/// The holder's record, read from the lock file already open (at offset 0, whatever
/// the shared offset); the holder may be a moment between locking and writing.
fn read_holder(file: &File) -> Option<LockRecord> {
    let read = || {
        let mut bytes = vec![0; 4096];
        let len = file.read_at(&mut bytes, 0).ok()?;
        bytes.truncate(len);
        LockRecord::parse(&String::from_utf8_lossy(&bytes))
    };
    if let Some(record) = read() {
        return Some(record);
    }
    // Waiting for the record blocks this thread for up to RECORD_GRACE. On the
    // multi-threaded runtime the gateway runs on, the runtime is told first, so
    // that its other tasks move to another worker instead of waiting too.
    let wait = || {
        let deadline = Instant::now() + RECORD_GRACE;
        loop {
            std::thread::sleep(Duration::from_millis(5));
            if let Some(record) = read() {
                return Some(record);
            }
            if Instant::now() >= deadline {
                return None;
            }
        }
    };
    let on_multi_thread_runtime = tokio::runtime::Handle::try_current()
        .is_ok_and(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread);
    if on_multi_thread_runtime {
        tokio::task::block_in_place(wait)
    } else {
        wait()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;
    use std::path::PathBuf;

    fn record(pid: u32) -> LockRecord {
        LockRecord {
            pid,
            url: "ws://127.0.0.1:1".into(),
            port: 1,
            started_unix_ms: 0,
        }
    }

    fn temp_dir(tag: &str) -> PathBuf {
        std::env::temp_dir().join(format!("gateway-profile-lock-{tag}-{}", std::process::id()))
    }

    /// An existing directory of mode 0700, whatever the umask.
    fn private_dir(tag: &str) -> PathBuf {
        let dir = temp_dir(tag);
        fs::create_dir_all(&dir).unwrap();
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o700)).unwrap();
        dir
    }

    #[test]
    fn a_held_profile_is_refused_with_the_holder_record_and_free_after_release() {
        let dir = temp_dir("held").join("nested");
        let first = FileProfileLocker.acquire(&dir, &record(1)).unwrap();
        let Err(ProfileLockFailure::Held { holder }) = FileProfileLocker.acquire(&dir, &record(2))
        else {
            panic!("second lock was granted");
        };
        assert_eq!(holder, Some(record(1)));
        drop(first);
        assert!(FileProfileLocker.acquire(&dir, &record(3)).is_ok());
        let _ = fs::remove_dir_all(temp_dir("held"));
    }

    #[cfg(unix)]
    #[test]
    fn the_state_dir_is_created_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = temp_dir("mode");
        let _guard = FileProfileLocker.acquire(&dir, &record(1)).unwrap();
        let mode = fs::metadata(&dir).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700);
        let _ = fs::remove_dir_all(&dir);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn the_current_holder_is_known_only_while_the_lock_is_held() {
        let dir = temp_dir("current");
        assert_eq!(FileProfileLocker.current_holder(&dir), None);
        let guard = FileProfileLocker.acquire(&dir, &record(7)).unwrap();
        assert_eq!(FileProfileLocker.current_holder(&dir), Some(record(7)));
        drop(guard);
        // The file and its record stay; the lock does not.
        assert!(dir.join(LOCK_FILE_NAME).exists());
        assert_eq!(FileProfileLocker.current_holder(&dir), None);
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_file_where_the_state_dir_should_be_is_not_a_directory() {
        let file = temp_dir("file");
        fs::write(&file, b"not a directory").unwrap();
        let problem = |dir: &Path| match FileProfileLocker.acquire(dir, &record(1)) {
            Err(ProfileLockFailure::Unavailable { problem, .. }) => problem.to_string(),
            other => panic!("not refused as unavailable: {other:?}"),
        };
        assert_eq!(problem(&file), "not a directory");
        assert_eq!(
            problem(&file.join("x").join("y")),
            format!("{} is not a directory", file.display())
        );
        let _ = fs::remove_file(&file);
    }

    /// The problem `acquire` reports for `dir`; panics if it was not refused.
    fn refusal(dir: &Path) -> StateDirProblem {
        match FileProfileLocker.acquire(dir, &record(1)) {
            Err(ProfileLockFailure::Unavailable { problem, .. }) => problem,
            Err(other) => panic!("refused for another reason: {other:?}"),
            Ok(_) => panic!("{} was accepted", dir.display()),
        }
    }

    #[test]
    fn a_state_dir_writable_by_others_is_refused_and_left_empty() {
        let dir = temp_dir("open");
        fs::create_dir_all(&dir).unwrap();
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o777)).unwrap();
        assert!(matches!(
            refusal(&dir),
            StateDirProblem::WritableByOthers { mode: 0o777 }
        ));
        assert!(!dir.join(LOCK_FILE_NAME).exists(), "nothing is written");
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_symbolic_link_named_gateway_lock_is_never_written_through() {
        let dir = private_dir("link");
        let target = temp_dir("link-target");
        fs::write(&target, b"precious\n").unwrap();
        std::os::unix::fs::symlink(&target, dir.join(LOCK_FILE_NAME)).unwrap();
        assert!(matches!(refusal(&dir), StateDirProblem::LockFileIsSymlink));
        assert_eq!(FileProfileLocker.current_holder(&dir), None);
        assert_eq!(fs::read(&target).unwrap(), b"precious\n");
        let _ = fs::remove_dir_all(&dir);
        let _ = fs::remove_file(&target);
    }

    #[test]
    fn a_state_dir_behind_the_users_own_symbolic_link_is_used() {
        let real = private_dir("real");
        let link = temp_dir("alias");
        std::os::unix::fs::symlink(&real, &link).unwrap();
        let guard = FileProfileLocker.acquire(&link, &record(5));
        assert!(guard.is_ok(), "{guard:?}");
        assert!(real.join(LOCK_FILE_NAME).exists());
        drop(guard);
        let _ = fs::remove_file(&link);
        let _ = fs::remove_dir_all(&real);
    }

    #[test]
    fn a_fifo_named_gateway_lock_does_not_block_a_reader() {
        let dir = private_dir("fifo");
        nix::unistd::mkfifo(&dir.join(LOCK_FILE_NAME), Mode::from_bits_truncate(0o600)).unwrap();
        assert_eq!(FileProfileLocker.current_holder(&dir), None);
        assert!(matches!(refusal(&dir), StateDirProblem::LockFileNotRegular));
        let _ = fs::remove_dir_all(&dir);
    }
}
