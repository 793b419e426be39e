//! The adapter from a HAL [`NetDevice`] to `smoltcp::phy::Device`.

use fata_hal::net::NetDevice;
use smoltcp::phy::{self, DeviceCapabilities, Medium};
use smoltcp::time::Instant;

/// A HAL device seen by smoltcp.
pub(crate) struct Adapter<D>(pub(crate) D);

pub(crate) struct Rx<T>(T);
pub(crate) struct Tx<T>(T);

impl<T: fata_hal::net::RxToken> phy::RxToken for Rx<T> {
    fn consume<R, F: FnOnce(&[u8]) -> R>(self, f: F) -> R {
        self.0.consume(f)
    }
}

impl<T: fata_hal::net::TxToken> phy::TxToken for Tx<T> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        self.0.consume(len, f)
    }
}

impl<D: NetDevice> phy::Device for Adapter<D> {
    type RxToken<'a>
        = Rx<D::Rx<'a>>
    where
        Self: 'a;
    type TxToken<'a>
        = Tx<D::Tx<'a>>
    where
        Self: 'a;

    fn receive(&mut self, _: Instant) -> Option<(Self::RxToken<'_>, Self::TxToken<'_>)> {
        self.0.receive().map(|(r, t)| (Rx(r), Tx(t)))
    }

    fn transmit(&mut self, _: Instant) -> Option<Self::TxToken<'_>> {
        self.0.transmit().map(Tx)
    }

    fn capabilities(&self) -> DeviceCapabilities {
        let c = self.0.caps();
        let mut caps = DeviceCapabilities::default();
        caps.medium = Medium::Ethernet;
        caps.max_transmission_unit = c.max_frame;
        caps.max_burst_size = Some(c.max_burst);
        caps
    }
}
