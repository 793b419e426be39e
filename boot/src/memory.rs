//! Deciding which RAM the heap gets: every RAM region of the memory map above the image and
//! below the identity-mapped limit. Pure, so the refusals are unit-tested.

use crate::layout::Range;
use core::fmt;
use fata_hal::MemoryRegion;
use fata_hal::boot::MAX_HEAP_REGIONS;

/// The smallest heap an image boots with.
pub const MIN_HEAP: u64 = 256 * 1024;
/// Physical memory the page tables map and the heap may use.
pub const MAPPED_LIMIT: u64 = 4 << 30;

/// Why the machine cannot run the image.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MemoryError {
    /// The image itself does not lie in RAM.
    ImageNotInRam { ram: u64, image: Range },
    /// Too little RAM is left for the heap.
    HeapTooSmall { heap: u64, image: Range },
}

impl fmt::Display for MemoryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            MemoryError::ImageNotInRam { ram, image } => write!(
                f,
                "the machine has {} KiB of RAM; the image needs {:#x}..{:#x} ({} KiB) to be RAM, plus at least {} KiB of heap",
                ram / 1024,
                image.start,
                image.end,
                (image.end - image.start) / 1024,
                MIN_HEAP / 1024
            ),
            MemoryError::HeapTooSmall { heap, image } => write!(
                f,
                "only {} KiB of RAM is left after the {} KiB image; at least {} KiB of heap is needed (give the machine more memory)",
                heap / 1024,
                (image.end - image.start) / 1024,
                MIN_HEAP / 1024
            ),
        }
    }
}

/// The heap regions for an image occupying `image`, given the machine's RAM regions.
pub fn plan_heap(
    ram: &[Range],
    image: Range,
) -> Result<[Option<MemoryRegion>; MAX_HEAP_REGIONS], MemoryError> {
    let total: u64 = ram.iter().map(|r| r.end.saturating_sub(r.start)).sum();
    if !ram
        .iter()
        .any(|r| r.start <= image.start && image.end <= r.end)
    {
        return Err(MemoryError::ImageNotInRam { ram: total, image });
    }
    let mut heap = [None; MAX_HEAP_REGIONS];
    let mut slots = 0;
    let mut bytes = 0;
    for r in ram {
        let start = r.start.max(image.end).max(1 << 20).next_multiple_of(4096);
        let end = r.end.min(MAPPED_LIMIT) & !4095;
        if end > start && slots < MAX_HEAP_REGIONS {
            heap[slots] = Some(MemoryRegion {
                start: start as usize,
                len: (end - start) as usize,
            });
            bytes += end - start;
            slots += 1;
        }
    }
    if bytes < MIN_HEAP {
        return Err(MemoryError::HeapTooSmall { heap: bytes, image });
    }
    Ok(heap)
}

#[cfg(test)]
mod tests {
    use super::*;

    const IMAGE: Range = Range {
        start: 0x10_0000,
        end: 0x18_1000,
    };

    #[test]
    fn heap_is_all_ram_above_the_image_below_4_gib() {
        let ram = [
            Range {
                start: 0,
                end: 0x9_fc00,
            },
            Range {
                start: 0x10_0000,
                end: 0x400_0000,
            },
            Range {
                start: 0x1_0000_0000,
                end: 0x2_0000_0000,
            },
        ];
        let h = plan_heap(&ram, IMAGE).unwrap();
        assert_eq!(
            h[0],
            Some(MemoryRegion {
                start: 0x18_1000,
                len: 0x400_0000 - 0x18_1000
            })
        );
        assert_eq!(h[1], None, "low memory and memory above 4 GiB are not used");
    }

    #[test]
    fn a_machine_too_small_for_the_image_or_its_heap_is_refused() {
        let tiny = [Range {
            start: 0,
            end: 0x10_0000,
        }];
        assert!(matches!(
            plan_heap(&tiny, IMAGE),
            Err(MemoryError::ImageNotInRam { .. })
        ));
        let snug = [Range {
            start: 0,
            end: 0x18_1000 + MIN_HEAP - 4096,
        }];
        let e = plan_heap(&snug, IMAGE).unwrap_err();
        assert!(matches!(e, MemoryError::HeapTooSmall { .. }));
        let msg = alloc_free_format(&e);
        assert!(msg.contains("at least 256 KiB of heap"), "{msg}");
    }

    fn alloc_free_format(e: &MemoryError) -> String {
        format!("{e}")
    }

    #[test]
    fn unaligned_regions_are_trimmed_to_whole_pages() {
        let ram = [Range {
            start: 0x10_0000,
            end: 0x80_0123,
        }];
        let h = plan_heap(
            &ram,
            Range {
                start: 0x10_0000,
                end: 0x18_0800,
            },
        )
        .unwrap();
        let r = h[0].unwrap();
        assert_eq!(r.start % 4096, 0);
        assert_eq!((r.start + r.len) % 4096, 0);
    }
}
