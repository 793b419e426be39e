//! Allocator benchmark: talc (the heap fata uses) against linked_list_allocator, on the same
//! arena and the same allocation pattern. Run with `cargo xtask bench alloc` (in the test crate so it needs no platform); figures are
//! recorded in docs/allocator.md.
//!
//! Pattern: fill the heap with `live` allocations of pseudo-random sizes (16..=1024 bytes),
//! then replace one at random N times (free + alloc). Reports nanoseconds per pair.
//!
//! The allocators' raw interfaces are `unsafe`; they are wrapped once, in `allocators`, the
//! only module allowed `unsafe` code.
#![deny(unsafe_code)]

use allocators::{Alloc, Lla, Talc};
use std::alloc::Layout;
use std::ptr::NonNull;
use std::time::Instant;

const ARENA: usize = 32 << 20;
const PAIRS: usize = 200_000;

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn size(&mut self) -> usize {
        16 + (self.next() % 1009) as usize
    }
}

#[allow(unsafe_code)]
mod allocators {
    //! The two allocators behind one safe interface. Each borrows its arena for as long as it
    //! lives, and `run` frees only what it allocated, with the same layout.

    use std::alloc::Layout;
    use std::marker::PhantomData;
    use std::ptr::NonNull;

    pub trait Alloc {
        /// Allocates `l` (non-zero size); panics when the arena is full.
        fn alloc(&mut self, l: Layout) -> NonNull<u8>;
        /// Frees `p`, which `alloc` returned for `l` and which is not freed yet.
        fn free(&mut self, p: NonNull<u8>, l: Layout);
    }

    pub struct Talc<'a>(
        talc::base::Talc<talc::source::Manual, talc::DefaultBinning>,
        PhantomData<&'a mut [u8]>,
    );

    impl<'a> Talc<'a> {
        /// An allocator managing `arena`.
        pub fn on(arena: &'a mut [u8]) -> Talc<'a> {
            let mut t = talc::base::Talc::new(talc::source::Manual);
            // SAFETY: the arena is borrowed mutably for the allocator's life, so it is used by
            // nothing else and outlives it.
            unsafe { t.claim(arena.as_mut_ptr(), arena.len()) }.expect("claim");
            Talc(t, PhantomData)
        }
    }

    impl Alloc for Talc<'_> {
        fn alloc(&mut self, l: Layout) -> NonNull<u8> {
            // SAFETY: non-zero layout.
            unsafe { self.0.allocate(l) }.expect("talc: out of memory")
        }
        fn free(&mut self, p: NonNull<u8>, l: Layout) {
            // SAFETY: `p` was allocated by this allocator with `l` (the trait's contract).
            unsafe { self.0.deallocate(p.as_ptr(), l) }
        }
    }

    pub struct Lla<'a>(linked_list_allocator::Heap, PhantomData<&'a mut [u8]>);

    impl<'a> Lla<'a> {
        /// A heap managing `arena`.
        pub fn on(arena: &'a mut [u8]) -> Lla<'a> {
            // SAFETY: as for `Talc::on`.
            let h = unsafe { linked_list_allocator::Heap::new(arena.as_mut_ptr(), arena.len()) };
            Lla(h, PhantomData)
        }
    }

    impl Alloc for Lla<'_> {
        fn alloc(&mut self, l: Layout) -> NonNull<u8> {
            self.0
                .allocate_first_fit(l)
                .expect("linked_list_allocator: out of memory")
        }
        fn free(&mut self, p: NonNull<u8>, l: Layout) {
            // SAFETY: `p` was allocated by this heap with `l` (the trait's contract).
            unsafe { self.0.deallocate(p, l) }
        }
    }
}

fn run(a: &mut dyn Alloc, live: usize) -> f64 {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut slots: Vec<(NonNull<u8>, Layout)> = (0..live)
        .map(|_| {
            let l = Layout::from_size_align(rng.size(), 8).unwrap();
            (a.alloc(l), l)
        })
        .collect();
    let t = Instant::now();
    for _ in 0..PAIRS {
        let i = (rng.next() % live as u64) as usize;
        let (p, l) = slots[i];
        a.free(p, l);
        let l = Layout::from_size_align(rng.size(), 8).unwrap();
        slots[i] = (a.alloc(l), l);
    }
    let ns = t.elapsed().as_nanos() as f64 / PAIRS as f64;
    for (p, l) in slots {
        a.free(p, l);
    }
    ns
}

fn main() {
    println!(
        "allocator benchmark: {PAIRS} free+alloc pairs, sizes 16..1024 B, {} MiB arena",
        ARENA >> 20
    );
    println!("{:<24} {:>12} {:>12}", "allocator", "1k live", "14k live");
    let mut arena = vec![0u8; ARENA];
    for name in ["talc 5", "linked_list_allocator"] {
        let mut figures = Vec::new();
        for live in [1_000, 14_000] {
            let ns = if name.starts_with("talc") {
                run(&mut Talc::on(&mut arena), live)
            } else {
                run(&mut Lla::on(&mut arena), live)
            };
            figures.push(ns);
        }
        println!("{:<24} {:>9.0} ns {:>9.0} ns", name, figures[0], figures[1]);
    }
}
