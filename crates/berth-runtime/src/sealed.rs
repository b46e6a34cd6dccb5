//! A sealed in-memory copy of a program (the CVE-2019-5736 defence).
//!
//! berthd runs every shim from one memfd copy of `berth-shim`, made at start and
//! sealed against any change. A shim's `/proc/<pid>/exe`, and that of the exec
//! helper it clones into a container, then names that memfd, never the host's
//! binary: a container that gets hold of it can read it but never write it (the
//! seals forbid writes for everyone, root included), and the file on the host's disk
//! is not reachable at all.

use rustix::fs::{MemfdFlags, SealFlags};
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;

/// The lowest descriptor number the copy is kept at: above every descriptor a shim
/// is handed at spawn (3 up to [`crate::sys::MAX_PASSED_FDS`] + 5), so that moving
/// those into place can never overwrite it before exec.
pub const MIN_FD: i32 = 256;

/// Copies `path` into a new memfd named `name`, seals it (no write, grow, shrink,
/// or further seal) and returns it close-on-exec, at [`MIN_FD`] or above.
pub fn sealed_copy(path: &Path, name: &str) -> io::Result<OwnedFd> {
    let base = MemfdFlags::CLOEXEC | MemfdFlags::ALLOW_SEALING;
    // Since 6.3 a memfd must say it may be executed (vm.memfd_noexec); older
    // kernels do not know the flag.
    let fd = match rustix::fs::memfd_create(name, base | MemfdFlags::EXEC) {
        Err(rustix::io::Errno::INVAL) => rustix::fs::memfd_create(name, base)?,
        r => r?,
    };
    let mut src = File::open(path)?;
    let mut dst = File::from(fd);
    // Plain reads and writes: io::copy would splice, and pages a splice still
    // references make F_SEAL_WRITE fail with EBUSY on a busy machine.
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = io::Read::read(&mut src, &mut buf)?;
        if n == 0 {
            break;
        }
        io::Write::write_all(&mut dst, &buf[..n])?;
    }
    let fd = OwnedFd::from(dst);
    // The kernel waits a moment for outstanding page references before it
    // refuses a write seal; a few tries more make it certain.
    let mut tries = 0;
    loop {
        match rustix::fs::fcntl_add_seals(
            &fd,
            SealFlags::WRITE | SealFlags::GROW | SealFlags::SHRINK | SealFlags::SEAL,
        ) {
            Err(rustix::io::Errno::BUSY) if tries < 20 => {
                tries += 1;
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            r => break r?,
        }
    }
    let high = rustix::io::fcntl_dupfd_cloexec(fd.as_fd(), MIN_FD)?;
    Ok(high)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::os::fd::AsRawFd;

    #[test]
    fn the_copy_cannot_be_written() {
        let fd = sealed_copy(Path::new("/proc/self/exe"), "sealed-test").unwrap();
        assert!(fd.as_raw_fd() >= MIN_FD);
        let path = format!("/proc/self/fd/{}", fd.as_raw_fd());
        assert_eq!(
            std::fs::read(&path).unwrap(),
            std::fs::read("/proc/self/exe").unwrap()
        );
        // Reopened for writing through /proc (what an attacker would do): refused.
        let err = std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .and_then(|mut f| f.write_all(b"x"))
            .unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::EPERM), "{err}");
        assert!(std::fs::read_link(&path)
            .unwrap()
            .to_string_lossy()
            .starts_with("/memfd:sealed-test"));
    }
}
