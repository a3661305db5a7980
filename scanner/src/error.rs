//! The marker's typed errors.

use std::fmt;

/// Everything that can go wrong when building a marker or giving it roots.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// A heap error (an invalid root address, a bad registration, ...).
    Heap(sencha_spans::Error),
    /// The kernel tier asked for is not available on this CPU (or not compiled for it).
    KernelUnavailable {
        /// The tier's name.
        tier: &'static str,
    },
    /// `SENCHA_KERNEL` holds something other than `scalar`, `avx2`, `avx512` or `auto`.
    InvalidKernelName {
        /// The value found.
        value: String,
    },
    /// Zero workers, or more than [`MAX_WORKERS`](crate::MAX_WORKERS).
    InvalidWorkers {
        /// The count asked for.
        workers: usize,
    },
    /// A precise root that is neither null nor the first byte of an allocated object.
    InvalidRoot {
        /// Its position among the precise roots.
        index: usize,
        /// The address.
        addr: usize,
        /// What the heap says about it.
        error: sencha_spans::Error,
    },
    /// The rayon thread pool could not be built.
    ThreadPool {
        /// rayon's message.
        message: String,
    },
    /// A marking worker panicked (a bug in sencha, or a broken memory contract). The mark
    /// was abandoned: the other workers stopped, and the heap is
    /// [`MarkState::Aborted`](sencha_spans::MarkState), so a sweep refuses to run until a
    /// new mark completes.
    MarkPanicked {
        /// The panic's message.
        message: String,
    },
    /// [`Roots::push_current_thread`](crate::Roots::push_current_thread): the thread's stack
    /// pointer is not in the stack its [`StackBase`](crate::roots::StackBase) describes (it
    /// runs on another stack: a coroutine's, a signal stack). Nothing was scanned.
    StackOutOfBounds {
        /// The stack pointer found.
        stack_pointer: usize,
        /// The stack's lowest address.
        lo: usize,
        /// The stack's top.
        hi: usize,
    },
    /// The OS could not report the calling thread's stack (`pthread_getattr_np` or
    /// `pthread_attr_getstack` failed, or reported an empty stack).
    StackQuery {
        /// The error code returned (0: an empty or wrapping stack was reported).
        code: i32,
    },
    /// The feature is not available on this target.
    Unsupported {
        /// What was asked for.
        what: &'static str,
    },
    /// A signal handler's machine context (its FPU / XSAVE state) is malformed, so part of
    /// it could not be trusted; what could be read was captured.
    InvalidContext {
        /// What is wrong.
        reason: &'static str,
    },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Heap(e) => write!(f, "{e}"),
            Error::KernelUnavailable { tier } => {
                write!(f, "the {tier} kernel tier is not available on this CPU")
            }
            Error::InvalidKernelName { value } => write!(
                f,
                "unknown kernel tier {value:?}: expected \"scalar\", \"avx2\", \"avx512\" or \"auto\""
            ),
            Error::InvalidWorkers { workers } => write!(
                f,
                "invalid worker count {workers}: must be 1 to {}",
                crate::MAX_WORKERS
            ),
            Error::InvalidRoot { index, addr, error } => {
                write!(
                    f,
                    "precise root #{index} ({addr:#x}) is not an object: {error}"
                )
            }
            Error::ThreadPool { message } => {
                write!(f, "could not build the thread pool: {message}")
            }
            Error::MarkPanicked { message } => {
                write!(
                    f,
                    "a marking worker panicked, the mark was abandoned: {message}"
                )
            }
            Error::StackOutOfBounds {
                stack_pointer,
                lo,
                hi,
            } => write!(
                f,
                "stack pointer {stack_pointer:#x} is outside the thread's stack {lo:#x}..{hi:#x}"
            ),
            Error::StackQuery { code } => {
                write!(
                    f,
                    "the OS could not report the thread's stack (code {code})"
                )
            }
            Error::Unsupported { what } => write!(f, "not supported on this target: {what}"),
            Error::InvalidContext { reason } => {
                write!(f, "malformed machine context: {reason}")
            }
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Heap(e) | Error::InvalidRoot { error: e, .. } => Some(e),
            _ => None,
        }
    }
}

impl From<sencha_spans::Error> for Error {
    fn from(e: sencha_spans::Error) -> Self {
        Error::Heap(e)
    }
}
