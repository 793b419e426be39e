//! Direct networking on `unix`: the HAL network device on a Linux TAP device, so the whole
//! fata stack (smoltcp, DHCP or static configuration) runs as in a guest.
//!
//! The TAP file descriptor is non-blocking and part of `wait`'s poll set: a readable TAP is
//! event bit [`TAP_EVENT`]. Frames larger than a receive buffer are dropped and counted.

use crate::sys;
use fata_hal::net::{NetCaps, NetDevice, NetStats, OpenError, RxToken, TxToken};
use std::fs::File;
use std::io::{ErrorKind, Read, Write};
use std::os::fd::AsRawFd;

/// The event bit of the TAP device in `wait`'s result.
pub const TAP_EVENT: u64 = 1;
const MAX_FRAME: usize = 1514;

/// An attached TAP device.
pub struct TapDevice {
    file: File,
    mac: [u8; 6],
    stats: NetStats,
    buf: Vec<u8>,
}

fn how_to_create(name: &str) -> String {
    format!(
        "create it for your user with `sudo ip tuntap add dev {name} mode tap user $USER && sudo ip link set {name} up`, or use the host's sockets with `net=socket`"
    )
}

impl TapDevice {
    /// Attaches to the existing TAP device `name`.
    pub fn open(name: &str) -> Result<TapDevice, OpenError> {
        if name.is_empty() || name.len() >= libc::IFNAMSIZ || name.contains('/') {
            return Err(OpenError::Failed(format!(
                "`{name}` is not a valid interface name"
            )));
        }
        if !std::path::Path::new("/sys/class/net").join(name).exists() {
            return Err(OpenError::Failed(format!(
                "TAP device `{name}` does not exist: {}",
                how_to_create(name)
            )));
        }
        let file = File::options()
            .read(true)
            .write(true)
            .open("/dev/net/tun")
            .map_err(|e| {
                OpenError::Failed(format!(
                    "cannot open /dev/net/tun ({e}): {}",
                    how_to_create(name)
                ))
            })?;
        if let Err(e) = sys::attach_tap(file.as_raw_fd(), name) {
            return Err(OpenError::Failed(match e.raw_os_error() {
                Some(libc::EPERM) => format!(
                    "no permission to attach TAP device `{name}`: {}",
                    how_to_create(name)
                ),
                Some(libc::EBUSY) => format!("TAP device `{name}` is in use by another program"),
                Some(libc::EINVAL) => {
                    format!("`{name}` is not a TAP device: {}", how_to_create(name))
                }
                _ => format!("cannot attach TAP device `{name}`: {e}"),
            }));
        }
        sys::set_nonblocking(file.as_raw_fd());
        // A locally administered address, stable per interface name.
        let h = name.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
        });
        let mac = [
            0x02,
            0x66,
            (h >> 24) as u8,
            (h >> 16) as u8,
            (h >> 8) as u8,
            h as u8,
        ];
        crate::register_fd(file.as_raw_fd(), TAP_EVENT);
        Ok(TapDevice {
            file,
            mac,
            stats: NetStats::default(),
            buf: vec![0; 65536],
        })
    }
}

/// A received frame.
pub struct TapRx(Vec<u8>);

/// Room to send one frame.
pub struct TapTx<'a> {
    file: &'a File,
    stats: &'a mut NetStats,
}

impl RxToken for TapRx {
    fn consume<R, F: FnOnce(&[u8]) -> R>(self, f: F) -> R {
        f(&self.0)
    }
}

impl TxToken for TapTx<'_> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        let mut frame = vec![0u8; len.min(MAX_FRAME)];
        let r = f(&mut frame);
        if len > MAX_FRAME {
            self.stats.tx_dropped += 1;
            return r;
        }
        let mut file = self.file;
        match file.write(&frame) {
            Ok(_) => {
                self.stats.tx_frames += 1;
                self.stats.tx_bytes += frame.len() as u64;
            }
            Err(_) => self.stats.tx_ring_full += 1,
        }
        r
    }
}

impl NetDevice for TapDevice {
    type Rx<'a> = TapRx;
    type Tx<'a> = TapTx<'a>;

    fn receive(&mut self) -> Option<(TapRx, TapTx<'_>)> {
        loop {
            match self.file.read(&mut self.buf) {
                Ok(n) if n > MAX_FRAME => self.stats.rx_oversize += 1,
                Ok(n) if n < 14 => self.stats.rx_runt += 1,
                Ok(n) => {
                    self.stats.rx_frames += 1;
                    self.stats.rx_bytes += n as u64;
                    let frame = self.buf[..n].to_vec();
                    return Some((
                        TapRx(frame),
                        TapTx {
                            file: &self.file,
                            stats: &mut self.stats,
                        },
                    ));
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => return None,
            }
        }
    }

    fn transmit(&mut self) -> Option<TapTx<'_>> {
        Some(TapTx {
            file: &self.file,
            stats: &mut self.stats,
        })
    }

    fn caps(&self) -> NetCaps {
        NetCaps {
            max_frame: MAX_FRAME,
            max_burst: 64,
        }
    }

    fn mac(&self) -> [u8; 6] {
        self.mac
    }

    fn link_up(&self) -> bool {
        true
    }

    fn stats(&self) -> NetStats {
        self.stats
    }

    fn service(&mut self) {}
}

impl Drop for TapDevice {
    fn drop(&mut self) {
        crate::unregister_fd(self.file.as_raw_fd());
    }
}
