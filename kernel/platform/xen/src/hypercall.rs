//! Typed hypercalls: each builds the argument structure Xen's public headers define and makes
//! the call through [`crate::hw::hypercall`]. Passing a pointer to Xen is `unsafe`, so this
//! module is allowed `unsafe` code; every wrapper passes pointers only to its own local
//! structure, or guest frames that the caller's contract covers.
//!
//! Numbers and layouts: `xen/include/public/` of Xen 4.17 (see docs/platforms.md and the
//! cross-check against `xen-sys` in this crate's tests).

use crate::hw::hypercall;

/// Hypercall numbers (`xen.h`).
pub(crate) mod nr {
    pub(crate) const SET_TIMER_OP: u32 = 15;
    pub(crate) const MEMORY_OP: u32 = 12;
    pub(crate) const GRANT_TABLE_OP: u32 = 20;
    pub(crate) const SCHED_OP: u32 = 29;
    pub(crate) const EVENT_CHANNEL_OP: u32 = 32;
    pub(crate) const HVM_OP: u32 = 34;
}

/// `DOMID_SELF`.
pub(crate) const DOMID_SELF: u16 = 0x7ff0;
/// `VIRQ_TIMER`.
pub(crate) const VIRQ_TIMER: u32 = 0;
/// `SCHEDOP_shutdown`.
const SCHEDOP_SHUTDOWN: u64 = 2;
/// `SHUTDOWN_poweroff`, `SHUTDOWN_crash`.
pub(crate) const SHUTDOWN_POWEROFF: u32 = 0;
pub(crate) const SHUTDOWN_CRASH: u32 = 3;
/// `XENMEM_add_to_physmap`.
const XENMEM_ADD_TO_PHYSMAP: u64 = 7;
/// `XENMAPSPACE_shared_info`, `XENMAPSPACE_grant_table`.
const XENMAPSPACE_SHARED_INFO: u32 = 0;
const XENMAPSPACE_GRANT_TABLE: u32 = 1;
/// `HVMOP_set_param`, `HVMOP_get_param`.
const HVMOP_SET_PARAM: u64 = 0;
const HVMOP_GET_PARAM: u64 = 1;
/// `HVM_PARAM_*`.
pub(crate) const HVM_PARAM_CALLBACK_IRQ: u32 = 0;
pub(crate) const HVM_PARAM_STORE_PFN: u32 = 1;
pub(crate) const HVM_PARAM_STORE_EVTCHN: u32 = 2;
pub(crate) const HVM_PARAM_CONSOLE_PFN: u32 = 17;
pub(crate) const HVM_PARAM_CONSOLE_EVTCHN: u32 = 18;
/// `EVTCHNOP_*`.
const EVTCHNOP_BIND_VIRQ: u64 = 1;
const EVTCHNOP_SEND: u64 = 4;
const EVTCHNOP_ALLOC_UNBOUND: u64 = 6;
const EVTCHNOP_UNMASK: u64 = 9;
/// `GNTTABOP_query_size`.
const GNTTABOP_QUERY_SIZE: u64 = 6;

/// A failed hypercall: Xen's negative errno.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct XenError(pub i64);

impl core::fmt::Display for XenError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let name = match -self.0 {
            1 => "EPERM",
            2 => "ENOENT",
            12 => "ENOMEM",
            14 => "EFAULT",
            16 => "EBUSY",
            22 => "EINVAL",
            28 => "ENOSPC",
            38 => "ENOSYS",
            62 => "ETIME",
            _ => "error",
        };
        write!(f, "{name} ({})", self.0)
    }
}

fn check(r: i64) -> Result<i64, XenError> {
    if r < 0 { Err(XenError(r)) } else { Ok(r) }
}

/// `struct xen_hvm_param`.
#[repr(C)]
pub(crate) struct HvmParam {
    pub(crate) domid: u16,
    pub(crate) index: u32,
    pub(crate) value: u64,
}

/// `struct xen_add_to_physmap`.
#[repr(C)]
pub(crate) struct AddToPhysmap {
    pub(crate) domid: u16,
    pub(crate) size: u16,
    pub(crate) space: u32,
    pub(crate) idx: u64,
    pub(crate) gpfn: u64,
}

/// `struct evtchn_alloc_unbound`.
#[repr(C)]
pub(crate) struct AllocUnbound {
    pub(crate) dom: u16,
    pub(crate) remote_dom: u16,
    pub(crate) port: u32,
}

/// `struct evtchn_bind_virq`.
#[repr(C)]
pub(crate) struct BindVirq {
    pub(crate) virq: u32,
    pub(crate) vcpu: u32,
    pub(crate) port: u32,
}

/// `struct gnttab_query_size`.
#[repr(C)]
pub(crate) struct QuerySize {
    pub(crate) dom: u16,
    pub(crate) nr_frames: u32,
    pub(crate) max_nr_frames: u32,
    pub(crate) status: i16,
}

/// Reads HVM parameter `index` of this domain.
pub(crate) fn hvm_get_param(index: u32) -> Result<u64, XenError> {
    let mut p = HvmParam {
        domid: DOMID_SELF,
        index,
        value: 0,
    };
    // SAFETY: Xen reads and writes the local structure only.
    check(unsafe { hypercall(nr::HVM_OP, [HVMOP_GET_PARAM, &raw mut p as u64, 0, 0, 0]) })?;
    Ok(p.value)
}

/// Sets HVM parameter `index` of this domain.
pub(crate) fn hvm_set_param(index: u32, value: u64) -> Result<(), XenError> {
    let mut p = HvmParam {
        domid: DOMID_SELF,
        index,
        value,
    };
    // SAFETY: Xen reads the local structure only. The parameters set by this crate (the
    // callback vector) only change how events are delivered.
    check(unsafe { hypercall(nr::HVM_OP, [HVMOP_SET_PARAM, &raw mut p as u64, 0, 0, 0]) }).map(drop)
}

/// Maps Xen's page `idx` of `space` (shared_info, a grant table frame) at guest frame `gpfn`.
///
/// # Safety
/// `gpfn` must be a page of this image reserved for that purpose: its old contents are
/// replaced by Xen's page.
unsafe fn add_to_physmap(space: u32, idx: u64, gpfn: u64) -> Result<(), XenError> {
    let mut a = AddToPhysmap {
        domid: DOMID_SELF,
        size: 0,
        space,
        idx,
        gpfn,
    };
    // SAFETY: Xen reads the local structure; the caller vouches for `gpfn`.
    check(unsafe {
        hypercall(
            nr::MEMORY_OP,
            [XENMEM_ADD_TO_PHYSMAP, &raw mut a as u64, 0, 0, 0],
        )
    })
    .map(drop)
}

/// Maps shared_info onto the static page reserved for it.
pub(crate) fn map_shared_info() -> Result<(), XenError> {
    let gpfn = crate::hw::shared_info_page().addr() as u64 >> 12;
    // SAFETY: the page is the image's static page reserved for shared_info.
    unsafe { add_to_physmap(XENMAPSPACE_SHARED_INFO, 0, gpfn) }
}

/// Maps grant table frame `i` onto the static page reserved for it (`i < GRANT_FRAMES`).
pub(crate) fn map_grant_frame(i: usize) -> Result<(), XenError> {
    let gpfn = crate::hw::grant_frame(i).addr() as u64 >> 12;
    // SAFETY: the page is the image's static page reserved for grant frame `i`.
    unsafe { add_to_physmap(XENMAPSPACE_GRANT_TABLE, i as u64, gpfn) }
}

/// A new event channel that domain `remote` may bind; the local port.
pub(crate) fn evtchn_alloc_unbound(remote: u16) -> Result<u32, XenError> {
    let mut a = AllocUnbound {
        dom: DOMID_SELF,
        remote_dom: remote,
        port: 0,
    };
    // SAFETY: Xen reads and writes the local structure only.
    check(unsafe {
        hypercall(
            nr::EVENT_CHANNEL_OP,
            [EVTCHNOP_ALLOC_UNBOUND, &raw mut a as u64, 0, 0, 0],
        )
    })?;
    Ok(a.port)
}

/// Binds virtual IRQ `virq` of vCPU 0 to a new port.
pub(crate) fn evtchn_bind_virq(virq: u32) -> Result<u32, XenError> {
    let mut b = BindVirq {
        virq,
        vcpu: 0,
        port: 0,
    };
    // SAFETY: Xen reads and writes the local structure only.
    check(unsafe {
        hypercall(
            nr::EVENT_CHANNEL_OP,
            [EVTCHNOP_BIND_VIRQ, &raw mut b as u64, 0, 0, 0],
        )
    })?;
    Ok(b.port)
}

/// Signals `port`'s other end.
pub(crate) fn evtchn_send(port: u32) {
    let mut p = port;
    // SAFETY: Xen reads the local `u32` only. A failure (a closed port) has no remedy here.
    let _ = unsafe {
        hypercall(
            nr::EVENT_CHANNEL_OP,
            [EVTCHNOP_SEND, &raw mut p as u64, 0, 0, 0],
        )
    };
}

/// Unmasks `port`; Xen re-raises the upcall if it is pending.
pub(crate) fn evtchn_unmask(port: u32) {
    let mut p = port;
    // SAFETY: Xen reads the local `u32` only.
    let _ = unsafe {
        hypercall(
            nr::EVENT_CHANNEL_OP,
            [EVTCHNOP_UNMASK, &raw mut p as u64, 0, 0, 0],
        )
    };
}

/// Arms the one-shot timer for Xen system time `deadline_ns` (0 cancels it). A deadline in the
/// past fires at once.
pub(crate) fn set_timer_op(deadline_ns: u64) -> Result<(), XenError> {
    // SAFETY: no pointer is passed.
    check(unsafe { hypercall(nr::SET_TIMER_OP, [deadline_ns, 0, 0, 0, 0]) }).map(drop)
}

/// The grant table's current and largest size in frames.
pub(crate) fn grant_query_size() -> Result<(u32, u32), XenError> {
    let mut q = QuerySize {
        dom: DOMID_SELF,
        nr_frames: 0,
        max_nr_frames: 0,
        status: 0,
    };
    // SAFETY: Xen reads and writes the local structure (count 1) only.
    check(unsafe {
        hypercall(
            nr::GRANT_TABLE_OP,
            [GNTTABOP_QUERY_SIZE, &raw mut q as u64, 1, 0, 0],
        )
    })?;
    if q.status != 0 {
        return Err(XenError(i64::from(q.status)));
    }
    Ok((q.nr_frames, q.max_nr_frames))
}

/// Shuts the domain down with `reason`; returns only if Xen refused.
pub(crate) fn shutdown(reason: u32) -> XenError {
    let mut r = reason;
    // SAFETY: Xen reads the local `u32` only.
    XenError(unsafe { hypercall(nr::SCHED_OP, [SCHEDOP_SHUTDOWN, &raw mut r as u64, 0, 0, 0]) })
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::mem::{offset_of, size_of};

    #[test]
    fn structures_have_the_layouts_of_the_public_headers() {
        assert_eq!(size_of::<HvmParam>(), 16);
        assert_eq!(offset_of!(HvmParam, index), 4);
        assert_eq!(offset_of!(HvmParam, value), 8);
        assert_eq!(size_of::<AddToPhysmap>(), 24);
        assert_eq!(offset_of!(AddToPhysmap, space), 4);
        assert_eq!(offset_of!(AddToPhysmap, idx), 8);
        assert_eq!(offset_of!(AddToPhysmap, gpfn), 16);
        assert_eq!(size_of::<AllocUnbound>(), 8);
        assert_eq!(offset_of!(AllocUnbound, port), 4);
        assert_eq!(size_of::<BindVirq>(), 12);
        assert_eq!(size_of::<QuerySize>(), 16);
        assert_eq!(offset_of!(QuerySize, nr_frames), 4);
        assert_eq!(offset_of!(QuerySize, status), 12);
    }

    /// xen-sys 0.0.0-pre2 is a bindgen of Xen 4.14's `xen.h`, `sched.h` and `event_channel.h`:
    /// where it overlaps this crate's own definitions, the two must agree.
    #[test]
    fn constants_and_layouts_agree_with_xen_sys() {
        use crate::{clock, events};
        use xen_sys as x;
        assert_eq!(nr::SET_TIMER_OP, x::__HYPERVISOR_set_timer_op);
        assert_eq!(nr::MEMORY_OP, x::__HYPERVISOR_memory_op);
        assert_eq!(nr::GRANT_TABLE_OP, x::__HYPERVISOR_grant_table_op);
        assert_eq!(nr::SCHED_OP, x::__HYPERVISOR_sched_op);
        assert_eq!(nr::EVENT_CHANNEL_OP, x::__HYPERVISOR_event_channel_op);
        assert_eq!(nr::HVM_OP, x::__HYPERVISOR_hvm_op);
        assert_eq!(VIRQ_TIMER, x::VIRQ_TIMER);
        assert_eq!(SCHEDOP_SHUTDOWN, u64::from(x::SCHEDOP_shutdown));
        assert_eq!(SHUTDOWN_POWEROFF, x::SHUTDOWN_poweroff);
        assert_eq!(SHUTDOWN_CRASH, x::SHUTDOWN_crash);
        assert_eq!(EVTCHNOP_BIND_VIRQ, u64::from(x::EVTCHNOP_bind_virq));
        assert_eq!(EVTCHNOP_SEND, u64::from(x::EVTCHNOP_send));
        assert_eq!(EVTCHNOP_ALLOC_UNBOUND, u64::from(x::EVTCHNOP_alloc_unbound));
        assert_eq!(EVTCHNOP_UNMASK, u64::from(x::EVTCHNOP_unmask));
        assert_eq!(
            size_of::<AllocUnbound>(),
            size_of::<x::evtchn_alloc_unbound>()
        );
        assert_eq!(
            offset_of!(AllocUnbound, remote_dom),
            offset_of!(x::evtchn_alloc_unbound, remote_dom)
        );
        assert_eq!(
            offset_of!(AllocUnbound, port),
            offset_of!(x::evtchn_alloc_unbound, port)
        );
        assert_eq!(size_of::<BindVirq>(), size_of::<x::evtchn_bind_virq>());
        assert_eq!(
            offset_of!(BindVirq, port),
            offset_of!(x::evtchn_bind_virq, port)
        );
        assert_eq!(size_of::<u32>(), size_of::<x::sched_shutdown>());
        assert_eq!(size_of::<u32>(), size_of::<x::evtchn_send>());
        // The shared_info offsets the idle loop and the clocks read.
        assert_eq!(
            events::UPCALL_PENDING,
            offset_of!(x::vcpu_info, evtchn_upcall_pending)
        );
        assert_eq!(
            events::PENDING_SEL,
            offset_of!(x::vcpu_info, evtchn_pending_sel)
        );
        assert_eq!(clock::TIME, offset_of!(x::vcpu_info, time));
        assert_eq!(
            events::EVTCHN_PENDING,
            offset_of!(x::shared_info, evtchn_pending)
        );
        assert_eq!(events::EVTCHN_MASK, offset_of!(x::shared_info, evtchn_mask));
        assert_eq!(clock::WC_VERSION, offset_of!(x::shared_info, wc_version));
        assert_eq!(clock::WC_SEC, offset_of!(x::shared_info, wc_sec));
        assert_eq!(clock::WC_NSEC, offset_of!(x::shared_info, wc_nsec));
        assert_eq!(clock::WC_SEC_HI, offset_of!(x::shared_info, wc_sec_hi));
        assert_eq!(8, offset_of!(x::vcpu_time_info, tsc_timestamp));
        assert_eq!(16, offset_of!(x::vcpu_time_info, system_time));
        assert_eq!(24, offset_of!(x::vcpu_time_info, tsc_to_system_mul));
        assert_eq!(28, offset_of!(x::vcpu_time_info, tsc_shift));
    }
}
