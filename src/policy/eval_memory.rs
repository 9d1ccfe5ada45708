//! A memory ceiling for policy evaluations: the process allocator counts what evaluation
//! threads allocate, and an evaluation that goes over its budget is frozen at that allocation
//! instead of taking the process down (regorus cannot be interrupted, and a failed allocation
//! aborts). The waiting caller reports the error; the frozen thread's memory stays bounded.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

/// Most one evaluation may allocate.
pub const EVALUATION_BUDGET: usize = 512 << 20;
/// Most all evaluations of the process together may hold; once frozen evaluations hold this
/// much, new ones are refused.
pub const PROCESS_BUDGET: usize = 1280 << 20;

/// Bytes currently charged to evaluation threads (frozen ones never give theirs back).
static CHARGED: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    /// Bytes this evaluation thread has allocated, net of what it freed; `usize::MAX` when the
    /// thread is not an evaluation.
    static USED: Cell<usize> = const { Cell::new(usize::MAX) };
    static EXCEEDED: Cell<*const AtomicBool> = const { Cell::new(std::ptr::null()) };
}

pub struct CountingAllocator;

#[global_allocator]
static ALLOCATOR: CountingAllocator = CountingAllocator;

/// Whether the process can start another evaluation.
pub fn has_room() -> bool {
    CHARGED.load(Ordering::Relaxed) < PROCESS_BUDGET
}

/// Marks the current thread as an evaluation; `exceeded` is set if it goes over budget. The
/// flag must outlive the thread (it is kept in an `Arc` the thread owns).
pub fn enter(exceeded: &Arc<AtomicBool>) {
    EXCEEDED.with(|e| e.set(Arc::as_ptr(exceeded)));
    USED.with(|u| u.set(0));
}

/// Ends the accounting of the current evaluation thread and returns its charge.
pub fn leave() {
    let used = USED.with(|u| u.replace(usize::MAX));
    if used != usize::MAX {
        CHARGED.fetch_sub(used.min(CHARGED.load(Ordering::Relaxed)), Ordering::Relaxed);
    }
    EXCEEDED.with(|e| e.set(std::ptr::null()));
}

/// What the current thread's evaluation holds; `None` outside an evaluation (or while the
/// thread is being torn down and its slot is gone).
fn evaluation_usage() -> Option<usize> {
    USED.try_with(Cell::get)
        .ok()
        .filter(|&used| used != usize::MAX)
}

fn charge(size: usize) {
    let Some(used) = evaluation_usage() else {
        return;
    };
    let after = used.saturating_add(size);
    let total = CHARGED.load(Ordering::Relaxed).saturating_add(size);
    if after > EVALUATION_BUDGET || total > PROCESS_BUDGET {
        // The allocation never happens; what the thread holds stays charged.
        freeze();
    }
    CHARGED.fetch_add(size, Ordering::Relaxed);
    let _ = USED.try_with(|u| u.set(after));
}

fn refund(size: usize) {
    let Some(used) = evaluation_usage() else {
        return;
    };
    let give = size.min(used);
    let _ = USED.try_with(|u| u.set(used - give));
    CHARGED.fetch_sub(give, Ordering::Relaxed);
}

/// Parks the evaluation thread for good, before the allocation happens.
#[cold]
fn freeze() -> ! {
    if let Ok(flag) = EXCEEDED.try_with(Cell::get) {
        if !flag.is_null() {
            // SAFETY: `enter` stored a pointer into an `Arc` this thread keeps alive, and the
            // thread never returns from here.
            unsafe { (*flag).store(true, Ordering::SeqCst) };
        }
    }
    loop {
        std::thread::park();
    }
}

// SAFETY: delegates every operation to `System`; the bookkeeping never allocates.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        charge(layout.size());
        System.alloc(layout)
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        refund(layout.size());
        System.dealloc(ptr, layout)
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        charge(layout.size());
        System.alloc_zeroed(layout)
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if new_size > layout.size() {
            charge(new_size - layout.size());
        } else {
            refund(layout.size() - new_size);
        }
        System.realloc(ptr, layout, new_size)
    }
}
