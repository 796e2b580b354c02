// SPDX-License-Identifier: GPL-2.0

//! A lock in a `static` that initialises itself on first use.
//!
//! The kernel crate's [`kernel::sync::global_lock!`] makes a `static` lock whose `init` is
//! `unsafe`: it must run once, before any other use. [`LazyGlobalLock`] runs it itself, exactly
//! once, on the first [`LazyGlobalLock::lock`], so using the lock is safe from anywhere. Declare
//! one with [`lazy_global_lock!`](crate::lazy_global_lock).

use core::sync::atomic::{
    AtomicU8,
    Ordering, //
};

use kernel::sync::lock::{
    GlobalGuard,
    GlobalLock,
    GlobalLockBackend, //
};

/// Not initialised yet.
const UNINIT: u8 = 0;
/// One thread is initialising it; the others wait.
const INITIALISING: u8 = 1;
/// Initialised.
const READY: u8 = 2;

/// A [`GlobalLock`] initialised on its first use.
///
/// # Invariants
///
/// `lock` is initialised once `state` is `READY`, and only the thread that moved `state` from
/// `UNINIT` to `INITIALISING` initialises it.
pub(crate) struct LazyGlobalLock<B: GlobalLockBackend + 'static> {
    lock: GlobalLock<B>,
    state: AtomicU8,
}

impl<B: GlobalLockBackend + 'static> LazyGlobalLock<B> {
    /// A lock holding `data`, initialised on first use.
    ///
    /// # Safety
    ///
    /// The backend type `B` must not be used with any other lock (as for [`GlobalLock::new`]).
    /// [`lazy_global_lock!`](crate::lazy_global_lock) makes a fresh `B` for each lock.
    pub(crate) const unsafe fn new(data: B::Item) -> Self {
        Self {
            // SAFETY: `B` is used with this lock only by the function's safety requirement;
            // `lock` runs `init` before any other use of it.
            lock: unsafe { GlobalLock::new(data) },
            // INVARIANT: Nothing is initialised.
            state: AtomicU8::new(UNINIT),
        }
    }

    /// Locks it, initialising it first if nobody has.
    pub(crate) fn lock(&'static self) -> GlobalGuard<B> {
        loop {
            match self.state.compare_exchange(
                UNINIT,
                INITIALISING,
                Ordering::Acquire,
                Ordering::Acquire,
            ) {
                Ok(_) => {
                    // SAFETY: Only the one thread that moved `state` off `UNINIT` gets here,
                    // and nobody uses the lock before `state` is `READY`.
                    unsafe { self.lock.init() };
                    // INVARIANT: Initialised above.
                    self.state.store(READY, Ordering::Release);
                    break;
                }
                Err(READY) => break,
                // Another thread is initialising it: a mutex or spinlock init, quick.
                Err(_) => core::hint::spin_loop(),
            }
        }
        self.lock.lock()
    }
}

/// Declares a `static` [`LazyGlobalLock`]:
///
/// ```ignore
/// lazy_global_lock! {
///     static TABLE: Mutex<Table> = Table::EMPTY;
/// }
/// ```
#[macro_export]
macro_rules! lazy_global_lock {
    {
        $(#[$meta:meta])* $pub:vis static $name:ident: $kind:ident<$valuety:ty> = $value:expr;
    } => {
        #[allow(non_camel_case_types, unreachable_pub, clippy::upper_case_acronyms)]
        $pub enum $name {}

        impl ::kernel::sync::lock::GlobalLockBackend for $name {
            const NAME: &'static ::kernel::str::CStr = ::kernel::c_str!(::core::stringify!($name));
            type Item = $valuety;
            type Backend = ::kernel::global_lock_inner!(backend $kind);

            fn get_lock_class() -> ::core::pin::Pin<&'static ::kernel::sync::LockClassKey> {
                ::kernel::static_lock_class!()
            }
        }

        $(#[$meta])*
        $pub static $name: $crate::kernel_ext::global_lock::LazyGlobalLock<$name> = {
            let init: $valuety = $value;
            // SAFETY: The backend type `$name` is made above for this one lock.
            unsafe { $crate::kernel_ext::global_lock::LazyGlobalLock::new(init) }
        };
    };
}
