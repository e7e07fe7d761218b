//! Arrays on transparent huge pages, for tables read in random order.
//!
//! With 10^5 allocations live, the live table's two arrays span 18 MiB and
//! a release lands anywhere in them. On 4 KiB pages nearly every record then
//! also misses the TLB, and a page walk in a VM guest is costly (its page
//! tables are translated again by the host). Distributions default to THP
//! "madvise", so a plain `Vec` gets 4 KiB pages. [`HugeArray`] aligns a large
//! array to 2 MiB and asks for huge pages (`MADV_HUGEPAGE`) before first
//! touch. The kernel may still decline; then it is an ordinary array.

use std::alloc::{self, Layout};
use std::ptr::NonNull;

/// The huge page size on x86-64 and most aarch64 kernels.
const HUGE_PAGE: usize = 2 << 20;

/// A fixed-length array; one of at least 2 MiB is 2 MiB-aligned and advised
/// for huge pages. Small ones are ordinary allocations.
pub struct HugeArray<T> {
    ptr: NonNull<T>,
    /// Initialised elements (all of them once built).
    len: usize,
    /// Elements allocated for: what `Drop` frees, even mid-`from_fn`.
    cap: usize,
}

// SAFETY: it owns its elements like a `Box<[T]>` does.
unsafe impl<T: Send> Send for HugeArray<T> {}
unsafe impl<T: Sync> Sync for HugeArray<T> {}

impl<T> HugeArray<T> {
    fn layout(len: usize) -> Layout {
        let bytes = std::mem::size_of::<T>().checked_mul(len).expect("array size overflows");
        let align = if bytes >= HUGE_PAGE { HUGE_PAGE } else { std::mem::align_of::<T>() };
        Layout::from_size_align(bytes, align).expect("array layout")
    }

    /// `len` elements, each `f(i)`.
    pub fn from_fn(len: usize, mut f: impl FnMut(usize) -> T) -> Self {
        let layout = Self::layout(len);
        let ptr = if layout.size() == 0 {
            NonNull::dangling()
        } else {
            // SAFETY: the layout has a non-zero size.
            let raw = unsafe { alloc::alloc(layout) };
            if layout.align() == HUGE_PAGE {
                advise_huge(raw, layout.size());
            }
            NonNull::new(raw as *mut T).unwrap_or_else(|| alloc::handle_alloc_error(layout))
        };
        // `len` counts the initialised prefix, so a panic in `f` drops exactly those.
        let mut a = HugeArray { ptr, len: 0, cap: len };
        for i in 0..len {
            // SAFETY: i < cap, inside the allocation (or a zero-sized write), not yet initialised.
            unsafe { a.ptr.as_ptr().add(i).write(f(i)) };
            a.len = i + 1;
        }
        a
    }
}

/// Asks the kernel for huge pages over `[p, p + len)`; a hint, failures ignored.
fn advise_huge(p: *mut u8, len: usize) {
    #[cfg(target_os = "linux")]
    // SAFETY: the range is one live allocation of ours, and MADV_HUGEPAGE
    // changes no contents.
    unsafe {
        libc::madvise(p.cast(), len, libc::MADV_HUGEPAGE);
    }
    #[cfg(not(target_os = "linux"))]
    let _ = (p, len);
}

impl<T> std::ops::Deref for HugeArray<T> {
    type Target = [T];
    #[inline]
    fn deref(&self) -> &[T] {
        // SAFETY: `len` initialised elements (or a dangling pointer and 0 bytes).
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }
}

impl<T> std::ops::DerefMut for HugeArray<T> {
    #[inline]
    fn deref_mut(&mut self) -> &mut [T] {
        // SAFETY: as in `deref`, and `&mut self` is exclusive.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }
}

impl<T> Drop for HugeArray<T> {
    fn drop(&mut self) {
        let layout = Self::layout(self.cap);
        // SAFETY: the first `len` elements are initialised and dropped once; the
        // memory was allocated with this layout unless it has no size.
        unsafe {
            std::ptr::drop_in_place(std::ptr::slice_from_raw_parts_mut(self.ptr.as_ptr(), self.len));
            if layout.size() != 0 {
                alloc::dealloc(self.ptr.as_ptr() as *mut u8, layout);
            }
        }
    }
}

impl<T> Default for HugeArray<T> {
    fn default() -> Self {
        HugeArray { ptr: NonNull::dangling(), len: 0, cap: 0 }
    }
}

impl<T: Clone> Clone for HugeArray<T> {
    fn clone(&self) -> Self {
        HugeArray::from_fn(self.len, |i| self[i].clone())
    }
}

impl<T: std::fmt::Debug> std::fmt::Debug for HugeArray<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::rc::Rc;

    #[test]
    fn holds_and_drops_what_it_was_given() {
        let token = Rc::new(());
        for len in [0usize, 1, 7, (HUGE_PAGE / 8) + 3] {
            let mut a = HugeArray::from_fn(len, |i| (i, token.clone()));
            assert_eq!(a.len(), len);
            assert!(a.iter().enumerate().all(|(i, (v, _))| *v == i));
            if len > 0 {
                a[len - 1].0 = 99;
                assert_eq!(a.last().unwrap().0, 99);
            }
            let b = a.clone();
            assert_eq!(Rc::strong_count(&token), 1 + 2 * len);
            drop(a);
            drop(b);
            assert_eq!(Rc::strong_count(&token), 1);
        }
    }

    #[test]
    fn a_large_array_is_huge_page_aligned() {
        let a = HugeArray::from_fn(HUGE_PAGE / 8, |i| i as u64);
        assert_eq!(a.as_ptr() as usize % HUGE_PAGE, 0);
        let small = HugeArray::from_fn(100, |i| i as u64);
        assert_eq!(small.as_ptr() as usize % 8, 0);
        assert!(HugeArray::<u64>::default().is_empty());
    }

    #[test]
    fn a_panic_while_filling_drops_what_was_made() {
        let token = Rc::new(());
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            HugeArray::from_fn(10, |i| if i == 5 { panic!("filling") } else { token.clone() })
        }));
        assert!(r.is_err());
        assert_eq!(Rc::strong_count(&token), 1);
    }
}
