//! Network devices: the contract between a NIC driver and the TCP/IP stack (`fata-net`).
//!
//! Token style, like `smoltcp::phy::Device`, so the stack adapter is thin and frames are never
//! copied between driver and stack: [`NetDevice::receive`] hands out a received frame together
//! with a transmit token (for an immediate reply), [`NetDevice::transmit`] hands out a transmit
//! token. A driver hands out a transmit token **only when it has room** for the frame; a
//! receive token owns its buffer until consumed or dropped, after which the driver reposts it.
//!
//! Errors never surface as panics: a frame the device delivered that cannot be trusted (length
//! beyond the buffer, unknown descriptor, ...) is dropped and counted in [`NetStats`].

/// Static properties of a device.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NetCaps {
    /// Largest Ethernet frame (without FCS) the device sends and receives: 1514 for a
    /// standard 1500-byte MTU.
    pub max_frame: usize,
    /// How many frames the stack may queue for transmission in one burst.
    pub max_burst: usize,
}

/// Counters a driver keeps. All are totals since the device was started.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NetStats {
    /// Frames received and handed to the stack.
    pub rx_frames: u64,
    /// Bytes in those frames.
    pub rx_bytes: u64,
    /// Frames transmitted.
    pub tx_frames: u64,
    /// Bytes in those frames.
    pub tx_bytes: u64,
    /// Received frames dropped because the device reported an impossible length (more than
    /// the buffer) or a frame larger than `max_frame`.
    pub rx_oversize: u64,
    /// Received frames dropped because they were shorter than an Ethernet header.
    pub rx_runt: u64,
    /// Completions the device reported for descriptors we never gave it, or twice.
    pub bad_descriptor: u64,
    /// Transmit requests refused because the ring was full.
    pub tx_ring_full: u64,
    /// Frames the stack asked to send that were dropped (longer than `max_frame`).
    pub tx_dropped: u64,
    /// Interrupts handled.
    pub interrupts: u64,
}

impl NetStats {
    /// All frames dropped for any reason.
    pub fn dropped(&self) -> u64 {
        self.rx_oversize + self.rx_runt + self.bad_descriptor + self.tx_dropped
    }
}

/// Shows a MAC address as `aa:bb:cc:dd:ee:ff`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Mac(pub [u8; 6]);

impl core::fmt::Display for Mac {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let m = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            m[0], m[1], m[2], m[3], m[4], m[5]
        )
    }
}

/// A received frame.
pub trait RxToken {
    /// Passes the frame to `f`.
    fn consume<R, F: FnOnce(&[u8]) -> R>(self, f: F) -> R;
}

/// Room for one frame to transmit.
pub trait TxToken {
    /// Lets `f` fill a buffer of `len` bytes (at most `max_frame`; longer requests are
    /// truncated to `max_frame` and the frame dropped), then sends it.
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R;
}

/// A network interface card.
pub trait NetDevice {
    /// Token for a received frame.
    type Rx<'a>: RxToken
    where
        Self: 'a;
    /// Token for a frame to send.
    type Tx<'a>: TxToken
    where
        Self: 'a;

    /// A received frame and room to answer it, if a frame is waiting.
    fn receive(&mut self) -> Option<(Self::Rx<'_>, Self::Tx<'_>)>;
    /// Room for one frame, if the transmit ring has any.
    fn transmit(&mut self) -> Option<Self::Tx<'_>>;
    /// Static properties.
    fn caps(&self) -> NetCaps;
    /// The MAC address.
    fn mac(&self) -> [u8; 6];
    /// Whether the link is up (devices without link status report up).
    fn link_up(&self) -> bool;
    /// Counters.
    fn stats(&self) -> NetStats;
    /// Acknowledges the device's interrupt and reclaims finished work. Call after every wake-up
    /// the device may have caused (it is cheap when there was nothing).
    fn service(&mut self);
}

/// Why a network device could not be acquired.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OpenError {
    /// No device of that name (the message says what exists).
    NotFound(&'static str),
    /// The device was already acquired.
    InUse,
    /// The device exists but could not be initialised (the message says why).
    Failed(alloc::string::String),
}

impl core::fmt::Display for OpenError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            OpenError::NotFound(why) => write!(f, "no network device: {why}"),
            OpenError::InUse => f.write_str("the network device is already in use"),
            OpenError::Failed(why) => write!(f, "the network device failed to start: {why}"),
        }
    }
}

/// A device with no link: for platforms (or builds) without networking.
pub struct NoNet;

/// Never constructed: [`NoNet`] has no frames.
pub enum Never {}

impl RxToken for Never {
    fn consume<R, F: FnOnce(&[u8]) -> R>(self, _: F) -> R {
        match self {}
    }
}

impl TxToken for Never {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, _: usize, _: F) -> R {
        match self {}
    }
}

impl NetDevice for NoNet {
    type Rx<'a> = Never;
    type Tx<'a> = Never;
    fn receive(&mut self) -> Option<(Never, Never)> {
        None
    }
    fn transmit(&mut self) -> Option<Never> {
        None
    }
    fn caps(&self) -> NetCaps {
        NetCaps {
            max_frame: 1514,
            max_burst: 1,
        }
    }
    fn mac(&self) -> [u8; 6] {
        [0; 6]
    }
    fn link_up(&self) -> bool {
        false
    }
    fn stats(&self) -> NetStats {
        NetStats::default()
    }
    fn service(&mut self) {}
}
