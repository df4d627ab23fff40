//! [`UnsafeCell`]: a cell whose accesses loom checks for data races under
//! `--cfg gort_loom`, with one scoped API for both builds, for the lock-
//! protected state of the layers above (channels, timer heaps).

/// An `UnsafeCell` that loom tracks in model builds (see the module docs).
#[derive(Debug)]
pub struct UnsafeCell<T> {
    #[cfg(not(gort_loom))]
    inner: std::cell::UnsafeCell<T>,
    #[cfg(gort_loom)]
    inner: loom::cell::UnsafeCell<T>,
}

impl<T> UnsafeCell<T> {
    /// A cell holding `v`.
    pub fn new(v: T) -> Self {
        UnsafeCell {
            #[cfg(not(gort_loom))]
            inner: std::cell::UnsafeCell::new(v),
            #[cfg(gort_loom)]
            inner: loom::cell::UnsafeCell::new(v),
        }
    }

    /// Runs `f` with exclusive access to the contents.
    ///
    /// # Safety
    /// No other access to the contents overlaps this call (the caller holds
    /// the lock that protects the cell).
    #[inline(always)]
    pub unsafe fn with_mut<R>(&self, f: impl FnOnce(&mut T) -> R) -> R {
        #[cfg(not(gort_loom))]
        {
            // SAFETY: exclusive per the caller's contract.
            f(unsafe { &mut *self.inner.get() })
        }
        #[cfg(gort_loom)]
        {
            // SAFETY: exclusive per the caller's contract (loom checks it).
            self.inner.with_mut(|p| f(unsafe { &mut *p }))
        }
    }

    /// Exclusive access through `&mut self`.
    pub fn get_mut(&mut self) -> &mut T {
        #[cfg(not(gort_loom))]
        {
            self.inner.get_mut()
        }
        #[cfg(gort_loom)]
        {
            // SAFETY: `&mut self` is exclusive.
            self.inner.with_mut(|p| unsafe { &mut *p })
        }
    }
}
