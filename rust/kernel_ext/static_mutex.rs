// SPDX-License-Identifier: GPL-2.0

//! A mutex in a `static` that initialises itself on first use.
//!
//! The kernel crate's [`kernel::sync::global_lock!`] makes a `static` lock whose `init` is
//! `unsafe` (it must run once, before any other use), and whose macro's promise is written
//! `unsafe(uninit)` at the static: a driver using it would have to call `init` in an `unsafe`
//! block of its own. A [`StaticMutex`] runs the initialisation itself, exactly once, on the
//! first [`StaticMutex::lock`], and is made by a plain `const fn`, with no macro: using it is
//! safe from anywhere, and nothing `unsafe` ends up in the driver's files.
//!
//! C: [`include/linux/mutex.h`].

use core::{
    cell::UnsafeCell,
    marker::PhantomData,
    ops::{
        Deref,
        DerefMut, //
    },
    sync::atomic::{
        AtomicU8,
        Ordering, //
    },
};

use kernel::{
    bindings,
    prelude::*,
    types::Opaque, //
};

/// Not initialised yet.
const UNINIT: u8 = 0;
/// One thread is initialising it; the others wait.
const INITIALISING: u8 = 1;
/// Initialised.
const READY: u8 = 2;

/// A mutex holding a `T`, for a `static`: initialised on its first [`StaticMutex::lock`].
///
/// # Invariants
///
/// `mutex` is initialised (`__mutex_init`, with `key` as its lock class, which lives in the
/// same static) once `state` is `READY`, by the one thread that moved `state` from `UNINIT`
/// to `INITIALISING`; nothing else touches it before. `data` is accessed only by the holder of
/// `mutex`.
pub(crate) struct StaticMutex<T> {
    state: AtomicU8,
    mutex: Opaque<bindings::mutex>,
    key: Opaque<bindings::lock_class_key>,
    name: &'static CStr,
    data: UnsafeCell<T>,
}

// SAFETY: The mutex may be used from any thread, and `data` is accessed only under it, so a
// `StaticMutex` may be shared between threads whenever `T` may be sent between them.
unsafe impl<T: Send> Sync for StaticMutex<T> {}
// SAFETY: As above.
unsafe impl<T: Send> Send for StaticMutex<T> {}

impl<T> StaticMutex<T> {
    /// A mutex named `name` (lockdep's class name) holding `data`, initialised on first use.
    pub(crate) const fn new(name: &'static CStr, data: T) -> Self {
        // INVARIANT: Nothing is initialised yet.
        Self {
            state: AtomicU8::new(UNINIT),
            mutex: Opaque::zeroed(),
            key: Opaque::zeroed(),
            name,
            data: UnsafeCell::new(data),
        }
    }

    /// Locks it, initialising it first if nobody has. Only for a mutex that never moves (in a
    /// `static`, or leaked), hence `&'static`.
    pub(crate) fn lock(&'static self) -> StaticMutexGuard<T> {
        loop {
            match self.state.compare_exchange(
                UNINIT,
                INITIALISING,
                Ordering::Acquire,
                Ordering::Acquire,
            ) {
                Ok(_) => {
                    // SAFETY: Only the one thread that moved `state` off `UNINIT` gets here, and
                    // nobody uses the mutex before `state` is `READY`. The mutex, the key (a
                    // lock class in static memory, as lockdep requires) and the name live for
                    // `'static`.
                    unsafe {
                        bindings::__mutex_init(
                            self.mutex.get(),
                            self.name.as_char_ptr(),
                            self.key.get(),
                        )
                    };
                    // INVARIANT: Initialised above.
                    self.state.store(READY, Ordering::Release);
                    break;
                }
                Err(READY) => break,
                // Another thread is initialising it: a mutex init, quick.
                Err(_) => core::hint::spin_loop(),
            }
        }
        // SAFETY: Initialised (`state` is `READY`, read with `Acquire`).
        unsafe { bindings::mutex_lock(self.mutex.get()) };
        StaticMutexGuard {
            lock: self,
            _not_send: PhantomData,
        }
    }
}

/// The holder of a [`StaticMutex`]: gives access to its data, and unlocks it on drop.
///
/// # Invariants
///
/// The current thread holds `lock.mutex`.
pub(crate) struct StaticMutexGuard<T: 'static> {
    lock: &'static StaticMutex<T>,
    /// A mutex is unlocked by the thread that locked it.
    _not_send: PhantomData<*mut ()>,
}

impl<T> Deref for StaticMutexGuard<T> {
    type Target = T;

    fn deref(&self) -> &T {
        // SAFETY: The guard holds the mutex (type invariant), under which only it accesses
        // `data`.
        unsafe { &*self.lock.data.get() }
    }
}

impl<T> DerefMut for StaticMutexGuard<T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: As for `deref`; `&mut self` makes this the one reference.
        unsafe { &mut *self.lock.data.get() }
    }
}

impl<T> Drop for StaticMutexGuard<T> {
    fn drop(&mut self) {
        // SAFETY: This thread holds the mutex (type invariant).
        unsafe { bindings::mutex_unlock(self.lock.mutex.get()) };
    }
}
