//! The Linux system calls this platform makes through `libc` because `std` has no wrapper
//! for them: `ppoll` for `wait`, and `TUNSETIFF` / `O_NONBLOCK` for the TAP device.
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
