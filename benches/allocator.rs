//! Allocator throughput from an IPv4 /16 and an IPv6 /64, and live memory per allocation.
//!
//! Memory is measured with a counting global allocator rather than guessed from struct sizes,
//! because the per-IP, per-Service and free-space maps all allocate nodes of their own.

// Needs libc/alloc calls std has no safe form of (a counting GlobalAlloc, which is unsafe by definition); every unsafe block says
// why it is sound.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::sync::atomic::{AtomicIsize, Ordering};

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use ferrolb_core::addr::Family;
use ferrolb_core::alloc::Allocator;
use ferrolb_core::pool::Pool;
use ferrolb_core::service::{AllocationRequest, ServiceKey};

/// Counts live heap bytes so the bench can report bytes per allocation.
struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

// SAFETY: forwards every call to the system allocator unchanged; only counts sizes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: same contract as ours.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: same contract as ours.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(
            new_size as isize - layout.size() as isize,
            Ordering::Relaxed,
        );
        // SAFETY: same contract as ours.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

const N: usize = 10_000;

fn pool(cidr: &str) -> Vec<Pool> {
    vec![Pool::new(
        "bench",
        vec![cidr.parse().expect("bench CIDR is valid")],
    )]
}

fn keys(n: usize) -> Vec<ServiceKey> {
    (0..n)
        .map(|i| ServiceKey::new("default", format!("svc-{i}")))
        .collect()
}

/// Allocates one address for each key, then releases them all.
fn fill_and_drain(a: &mut Allocator, keys: &[ServiceKey], req: &AllocationRequest) {
    for k in keys {
        black_box(a.ensure(k, req).expect("pool is large enough"));
    }
    for k in keys {
        black_box(a.release(k));
    }
}

fn throughput(c: &mut Criterion) {
    let keys = keys(N);
    let mut group = c.benchmark_group("allocate_then_release");
    group.throughput(Throughput::Elements(N as u64));
    group.sample_size(20);
    for (name, cidr, family) in [
        ("ipv4_slash16", "10.0.0.0/16", Family::V4),
        ("ipv6_slash64", "fd00::/64", Family::V6),
    ] {
        let req = AllocationRequest::simple("default", family);
        group.bench_function(name, |b| {
            b.iter_batched(
                || Allocator::new(pool(cidr)),
                |mut a| fill_and_drain(&mut a, &keys, &req),
                BatchSize::LargeInput,
            )
        });
    }
    group.finish();
}

/// Prints live heap bytes per allocation for 100 000 Services (not a timed benchmark).
fn memory(_c: &mut Criterion) {
    const M: usize = 100_000;
    let keys = keys(M);
    for (name, cidr, family) in [
        ("ipv4 /8", "10.0.0.0/8", Family::V4),
        ("ipv6 /64", "fd00::/64", Family::V6),
    ] {
        let req = AllocationRequest::simple("default", family);
        let before = LIVE.load(Ordering::Relaxed);
        let mut a = Allocator::new(pool(cidr));
        let empty = LIVE.load(Ordering::Relaxed);
        for k in &keys {
            a.ensure(k, &req).expect("pool is large enough");
        }
        let full = LIVE.load(Ordering::Relaxed);
        println!(
            "memory {name}: empty allocator {} bytes; {M} allocations {} bytes = {} bytes/allocation",
            empty - before,
            full - empty,
            (full - empty) / M as isize
        );
        drop(a);
    }
}

criterion_group!(benches, throughput, memory);
criterion_main!(benches);
