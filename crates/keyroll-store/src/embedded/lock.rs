//! Per-secret rotation locks that hold across processes and threads alike.
//!
//! A lock is `flock(LOCK_EX | LOCK_NB)` on `<data-dir>/locks/<sha256(arn)>.lock`, opened
//! afresh by every call. `flock` locks belong to an open file description, so two calls in the
//! same process conflict exactly like two processes do; the lock goes when the file is closed
//! (the [`RotationLock`] dropped) or the process dies. Lock files are never deleted: removing
//! one while another process has it open would let a third lock a new file of the same name.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use keyroll_core::SmError;
use keyroll_core::ports::RotationLock;
use sha2::{Digest, Sha256};

/// The lock file of `arn`.
pub fn lock_path(locks_dir: &Path, arn: &str) -> PathBuf {
    locks_dir.join(format!(
        "{}.lock",
        hex::encode(Sha256::digest(arn.as_bytes()))
    ))
}

/// Keeps the locked file open; closing it releases the lock.
struct Held(#[allow(dead_code)] File);

/// Takes the rotation lock of `arn` without waiting: `None` if someone holds it.
pub fn try_lock(locks_dir: &Path, arn: &str) -> Result<Option<RotationLock>, SmError> {
    let path = lock_path(locks_dir, arn);
    let fail = |e: std::io::Error| {
        SmError::InternalServiceError(format!(
            "cannot take the rotation lock {}: {e}; check that the data directory is writable",
            path.display()
        ))
    };
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(&path)
        .map_err(fail)?;
    loop {
        // SAFETY: flock only reads the descriptor number of a file we own and keep open.
        let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        if rc == 0 {
            return Ok(Some(RotationLock(Box::new(Held(file)))));
        }
        let e = std::io::Error::last_os_error();
        match e.raw_os_error() {
            Some(libc::EINTR) => continue,
            Some(code) if code == libc::EWOULDBLOCK || code == libc::EAGAIN => return Ok(None),
            _ => return Err(fail(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_calls_in_one_process_conflict_until_the_first_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let a = try_lock(dir.path(), "arn:a").unwrap();
        assert!(a.is_some());
        assert!(try_lock(dir.path(), "arn:a").unwrap().is_none());
        assert!(try_lock(dir.path(), "arn:b").unwrap().is_some());
        drop(a);
        assert!(try_lock(dir.path(), "arn:a").unwrap().is_some());
    }

    #[test]
    fn lock_files_are_named_by_hash() {
        let p = lock_path(Path::new("/d"), "arn:aws:secretsmanager:x");
        let name = p.file_name().unwrap().to_str().unwrap();
        assert_eq!(name.len(), 64 + 5);
        assert!(name.ends_with(".lock"));
    }
}
