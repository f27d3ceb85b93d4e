//! Decoders allocate no more than the input holds: a length or count read from untrusted bytes
//! is never trusted before that many bytes are known to be there.
//!
//! This binary has a single test, so that its counting allocator sees no other test's memory.

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use common::*;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use theater_chain::*;

/// The system allocator, noting the largest single allocation since the last reset.
struct Counting;

static LARGEST: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LARGEST.fetch_max(layout.size(), Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        LARGEST.fetch_max(layout.size(), Ordering::Relaxed);
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LARGEST.fetch_max(new_size, Ordering::Relaxed);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// The largest allocation decoding and verifying `bytes` makes.
fn largest_allocation(bytes: &[u8]) -> usize {
    LARGEST.store(0, Ordering::Relaxed);
    let _ = Event::decode(bytes);
    if let Ok(file) = ChainFile::decode(bytes) {
        let _ = file.verify();
        let _ = file.referenced_blobs();
    }
    LARGEST.load(Ordering::Relaxed)
}

/// Decoded structures are larger than their bytes (a `StoredEvent` is 56 bytes for 36 or more
/// in the file, and vectors grow by doubling), so this allows a constant factor, nothing like
/// the gigabytes a trusted length would ask for.
fn allowed(input: usize) -> usize {
    8 * input + 4096
}

#[test]
fn decoders_allocate_no_more_than_the_input_holds() {
    let mut header = MAGIC.to_vec();
    header.extend_from_slice(&FILE_VERSION.to_le_bytes());
    let hostile: Vec<Vec<u8>> = vec![
        // An actor id of 4 GiB.
        [&header[..], &u32::MAX.to_le_bytes()].concat(),
        // 2^64 - 1 events, the first of 4 GiB.
        [
            &header[..],
            &1u32.to_le_bytes(),
            b"a",
            &u64::MAX.to_le_bytes(),
            &u32::MAX.to_le_bytes(),
        ]
        .concat(),
        // No events, then 2^64 - 1 signatures.
        [
            &header[..],
            &1u32.to_le_bytes(),
            b"a",
            &0u64.to_le_bytes(),
            &[0; 32],
            &[1],
            &[1; 32],
            &u64::MAX.to_le_bytes(),
        ]
        .concat(),
        // An event whose first string claims 4 GiB.
        [
            &[EVENT_ENCODING_VERSION][..],
            &[0; 8],
            &[1],
            &u32::MAX.to_le_bytes(),
        ]
        .concat(),
    ];
    for bytes in &hostile {
        let largest = largest_allocation(bytes);
        assert!(
            largest <= allowed(bytes.len()),
            "{largest} bytes allocated for {} bytes of input",
            bytes.len()
        );
    }

    let mut runner = TestRunner::new(Config::with_cases(128));
    let damaged = (chain(), mutations()).prop_map(|((id, events), m)| {
        let mut bytes = file_of(&id, &events).encode();
        mutate(&mut bytes, &m);
        bytes
    });
    runner
        .run(&damaged, |bytes| {
            let largest = largest_allocation(&bytes);
            prop_assert!(
                largest <= allowed(bytes.len()),
                "{} bytes allocated for {} bytes of input",
                largest,
                bytes.len()
            );
            Ok(())
        })
        .unwrap();
}
