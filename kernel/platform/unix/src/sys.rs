//! The Linux system calls this platform makes through `libc` because `std` has no wrapper
//! for them: `ppoll` for `wait`, `TUNSETIFF` / `O_NONBLOCK` for the TAP device, and for disks
//! the locks (`flock`, `F_OFD_SETLK`), a block device's sector size (`BLKSSZGET`), and
//! `getrandom` for entropy.
//!
//! Calling C is `unsafe`, so this module is allowed `unsafe` code; each function here wraps
//! one call with the pointers it needs built from safe values, so callers stay safe code.

use std::os::fd::RawFd;

/// Waits until one of `fds` is ready or `timeout` has passed (`None`: no limit), with
/// `ppoll`; returns its result (the number of ready entries, 0 on timeout, negative on an
/// error or a signal, which simply ends the wait early).
pub(crate) fn ppoll(fds: &mut [libc::pollfd], timeout: Option<libc::timespec>) -> libc::c_int {
    let ts = timeout
        .as_ref()
        .map_or(std::ptr::null(), |t| t as *const libc::timespec);
    // SAFETY: `fds` is a valid array of `fds.len()` pollfd entries for the call; `ts` is null
    // or points to a timespec that lives until the call returns; the signal mask pointer is
    // null.
    unsafe {
        libc::ppoll(
            fds.as_mut_ptr(),
            fds.len() as libc::nfds_t,
            ts,
            std::ptr::null(),
        )
    }
}

/// Attaches the `/dev/net/tun` descriptor `fd` to the TAP device `name` (shorter than
/// `IFNAMSIZ`), without packet information headers.
pub(crate) fn attach_tap(fd: RawFd, name: &str) -> std::io::Result<()> {
    // SAFETY: `ifreq` is plain old data; all-zero is a valid value.
    let mut ifr: libc::ifreq = unsafe { std::mem::zeroed() };
    // The last byte stays 0: the name is NUL-terminated when shorter than `IFNAMSIZ`.
    for (dst, src) in ifr.ifr_name.iter_mut().zip(name.bytes()) {
        *dst = src as libc::c_char;
    }
    ifr.ifr_ifru.ifru_flags = (libc::IFF_TAP | libc::IFF_NO_PI) as libc::c_short;
    // SAFETY: TUNSETIFF reads an `ifreq` that lives for the call; the descriptor is the
    // caller's.
    let r = unsafe { libc::ioctl(fd, libc::TUNSETIFF, &mut ifr as *mut libc::ifreq) };
    if r < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// Makes reads and writes of `fd` non-blocking.
pub(crate) fn set_nonblocking(fd: RawFd) {
    // SAFETY: F_GETFL/F_SETFL only change the flags of the caller's descriptor.
    unsafe {
        let fl = libc::fcntl(fd, libc::F_GETFL);
        libc::fcntl(fd, libc::F_SETFL, fl | libc::O_NONBLOCK);
    }
}

/// Takes a BSD lock (`flock`) on the whole file of `fd` without waiting: exclusive for a
/// writer, shared for a reader. `EWOULDBLOCK` means another open file holds a conflicting one.
pub(crate) fn flock_nonblocking(fd: RawFd, exclusive: bool) -> std::io::Result<()> {
    let op = if exclusive {
        libc::LOCK_EX
    } else {
        libc::LOCK_SH
    };
    // SAFETY: `flock` takes no pointers; it only changes the lock held through the caller's
    // descriptor.
    let r = unsafe { libc::flock(fd, op | libc::LOCK_NB) };
    if r < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// Takes an open-file-description record lock (`F_OFD_SETLK`) on `len` bytes of the file of
/// `fd` from byte `start` (`len` 0: to the end, however far the file grows), without waiting:
/// a write lock (needs `fd` open for writing) or a read lock. These are the locks QEMU takes
/// on its images. `EAGAIN`/`EACCES` mean a conflicting lock is held through another open file.
pub(crate) fn ofd_lock(fd: RawFd, write: bool, start: i64, len: i64) -> std::io::Result<()> {
    let mut fl = ofd_range(
        if write { libc::F_WRLCK } else { libc::F_RDLCK },
        start,
        len,
    );
    // SAFETY: F_OFD_SETLK reads the `flock` structure, which lives until the call returns;
    // the descriptor is the caller's.
    let r = unsafe { libc::fcntl(fd, libc::F_OFD_SETLK, &mut fl as *mut libc::flock) };
    if r < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// Whether another open file holds any record lock on `len` bytes from `start` of the file of
/// `fd` (`F_OFD_GETLK` for a write lock; locks held through `fd` itself do not count).
pub(crate) fn ofd_locked_by_others(fd: RawFd, start: i64, len: i64) -> std::io::Result<bool> {
    let mut fl = ofd_range(libc::F_WRLCK, start, len);
    // SAFETY: F_OFD_GETLK reads and rewrites the `flock` structure, which lives until the call
    // returns; the descriptor is the caller's.
    let r = unsafe { libc::fcntl(fd, libc::F_OFD_GETLK, &mut fl as *mut libc::flock) };
    if r < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(i32::from(fl.l_type) != libc::F_UNLCK)
}

fn ofd_range(kind: libc::c_int, start: i64, len: i64) -> libc::flock {
    // SAFETY: `flock` is plain old data; all-zero is a valid value (pid 0, as OFD locks
    // require).
    let mut fl: libc::flock = unsafe { std::mem::zeroed() };
    fl.l_type = kind as libc::c_short;
    fl.l_whence = libc::SEEK_SET as libc::c_short;
    fl.l_start = start as libc::off_t;
    fl.l_len = len as libc::off_t;
    fl
}

/// The logical sector size of the block device `fd` (`BLKSSZGET`).
pub(crate) fn logical_sector_size(fd: RawFd) -> std::io::Result<u32> {
    let mut size: libc::c_int = 0;
    // SAFETY: BLKSSZGET writes one `int` through the pointer, which points to `size` for the
    // duration of the call; the descriptor is the caller's.
    let r = unsafe { libc::ioctl(fd, libc::BLKSSZGET, &mut size as *mut libc::c_int) };
    if r < 0 {
        return Err(std::io::Error::last_os_error());
    }
    u32::try_from(size).map_err(|_| std::io::Error::from(std::io::ErrorKind::InvalidData))
}

/// Fills all of `buf` from the kernel's random pool with `getrandom(2)` (flags 0: blocks only
/// until the pool is initialised at boot, which a running host long is). Retries on `EINTR`
/// and short reads; any other error is returned.
pub(crate) fn getrandom(buf: &mut [u8]) -> std::io::Result<()> {
    let mut done = 0;
    while done < buf.len() {
        let rest = &mut buf[done..];
        // SAFETY: `rest` is valid for writes of `rest.len()` bytes for the duration of the call;
        // the kernel writes at most that many.
        let n = unsafe { libc::getrandom(rest.as_mut_ptr().cast(), rest.len(), 0) };
        if n < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        done += n as usize;
    }
    Ok(())
}
