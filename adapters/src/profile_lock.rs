//! The profile lock: an exclusive advisory lock (std `File::try_lock`, `flock` on
//! Linux) on `<state dir>/gateway.lock`, held for the gateway's lifetime and released
//! by the OS on any exit.

use std::fs::{self, DirBuilder, File, OpenOptions, TryLockError};
use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use gateway_domain::profile::{LOCK_FILE_NAME, LockRecord, ProfileLockFailure, ProfileLocker};

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
        std::os::unix::fs::FileExt::write_all_at(&file, record.to_text().as_bytes(), 0)?;
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
        let unavailable = |path: &Path| {
            let path = path.to_path_buf();
            move |source| ProfileLockFailure::Unavailable { path, source }
        };
        create_private_dir(dir).map_err(unavailable(dir))?;
        let path = dir.join(LOCK_FILE_NAME);
        let mut file = open_lock_file(&path).map_err(unavailable(&path))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                return Err(ProfileLockFailure::Held {
                    holder: read_holder(&path),
                });
            }
            Err(TryLockError::Error(source)) => {
                return Err(ProfileLockFailure::Unavailable { path, source });
            }
        }
        file.set_len(0)
            .and_then(|()| file.write_all(record.to_text().as_bytes()))
            .map_err(unavailable(&path))?;
        Ok(ProfileLockGuard { file })
    }

    fn current_holder(&self, dir: &Path) -> Option<LockRecord> {
        let path = dir.join(LOCK_FILE_NAME);
        let text = fs::read_to_string(&path).ok()?;
        is_flocked(&path).then(|| LockRecord::parse(&text))?
    }
}

/// Whether some open file holds a `flock` on `path`, read from `/proc/locks` so that
/// looking never takes the lock.
#[cfg(target_os = "linux")]
fn is_flocked(path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    let Ok(metadata) = fs::metadata(path) else {
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
fn is_flocked(_path: &Path) -> bool {
    false
}

fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    let mut builder = DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)
}

fn open_lock_file(path: &Path) -> std::io::Result<File> {
    let mut options = OpenOptions::new();
    options.read(true).write(true).create(true).truncate(false);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)
}

/// The holder's record; it may be a moment between locking and writing.
fn read_holder(path: &Path) -> Option<LockRecord> {
    let read = || {
        fs::read_to_string(path)
            .ok()
            .as_deref()
            .and_then(LockRecord::parse)
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

    fn record(pid: u32) -> LockRecord {
        LockRecord {
            pid,
            url: "ws://127.0.0.1:1".into(),
            port: 1,
            started_unix_ms: 0,
        }
    }

    fn temp_dir(tag: &str) -> std::path::PathBuf {
        std::env::temp_dir().join(format!("gateway-profile-lock-{tag}-{}", std::process::id()))
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
    fn an_unusable_state_dir_is_unavailable() {
        let file = temp_dir("file");
        fs::write(&file, b"not a directory").unwrap();
        let err = FileProfileLocker
            .acquire(&file.join("x"), &record(1))
            .unwrap_err();
        assert!(matches!(err, ProfileLockFailure::Unavailable { .. }));
        let _ = fs::remove_file(&file);
    }
}
