//! Typed errors: every check on user input ends in one of these, never in a panic.

use std::fmt;

/// Everything that can go wrong when building, registering into or querying a heap.
///
/// `#[non_exhaustive]`: new checks may add variants in minor releases.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// An object size that is not a multiple of 8 from 16 to 512.
    InvalidSizeClass {
        /// The size asked for.
        bytes: usize,
    },
    /// A medium object size that is not a multiple of 8 from 520 to 8192.
    InvalidMediumClass {
        /// The size asked for.
        bytes: usize,
    },
    /// A layout of zero bytes, or one whose pointer words lie outside the object.
    InvalidLayout {
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A layout too large for where it was used (a small-object layout over 512 bytes, or a
    /// layout larger than the object it describes).
    LayoutTooLarge {
        /// The layout's size in bytes.
        bytes: usize,
        /// The most that fits.
        limit: usize,
    },
    /// A null address.
    NullAddress,
    /// An address that is not aligned as required.
    Misaligned {
        /// The address given.
        addr: usize,
        /// The alignment it needs, in bytes.
        align: usize,
    },
    /// An address range that sencha cannot map (beyond 2^48, or wrapping around).
    OutOfAddressSpace {
        /// Start of the range.
        addr: usize,
        /// Its length in bytes.
        len: usize,
    },
    /// A length of zero, or one too large to be real.
    InvalidLength {
        /// The length given.
        len: usize,
    },
    /// The range overlaps memory already registered with this heap (spans and large objects
    /// may not share an 8 KiB page).
    Overlap {
        /// Start of the range given.
        addr: usize,
        /// A registered address inside it.
        existing: usize,
    },
    /// This exact span or object is registered already.
    AlreadyRegistered {
        /// Its address.
        addr: usize,
    },
    /// The address is not the start of a span or large object registered with this heap.
    NotRegistered {
        /// The address given.
        addr: usize,
    },
    /// The address is in the heap but is not the start of an allocated object (an interior
    /// pointer, a free slot, or a span's metadata tail).
    NotAnObject {
        /// The address given.
        addr: usize,
    },
    /// The slot is allocated already.
    SlotInUse {
        /// The address given.
        addr: usize,
    },
    /// A word index past the end of the object.
    WordOutOfRange {
        /// The index given.
        word: usize,
        /// The object's size in words.
        words: usize,
    },
    /// The operating system refused memory.
    OutOfMemory {
        /// How many bytes were asked for.
        bytes: usize,
    },
    /// A span that belongs to a custom allocator was given to an operation of the embedded
    /// allocator, or the other way round.
    WrongOwner {
        /// The address given.
        addr: usize,
    },
    /// A [`HeapConfig`](crate::HeapConfig) field outside its documented limits.
    InvalidConfig {
        /// The field.
        field: &'static str,
        /// The value given.
        value: usize,
        /// What it must be.
        reason: &'static str,
    },
    /// [`Heap::sweep`](crate::Heap::sweep) with no complete mark since the last sweep (a new
    /// heap, a mark that failed, or [`Heap::clear_marks`](crate::Heap::clear_marks)): sweeping
    /// then would free live objects, so nothing is freed.
    NoCompleteMark,
    /// A mark of this heap is already running (on another thread).
    MarkInProgress,
    /// The object is pinned: unpin it before freeing or unregistering it.
    Pinned {
        /// The object's address.
        addr: usize,
    },
    /// [`Heap::unpin`](crate::Heap::unpin) of an object that is not pinned.
    NotPinned {
        /// The address given.
        addr: usize,
    },
    /// A [`WeakRef`](crate::WeakRef) or [`Ephemeron`](crate::Ephemeron) handle that was
    /// dropped (or belongs to another heap).
    InvalidHandle,
    /// The object was found unreachable by the last complete mark and will be freed by the
    /// next sweep: it cannot be pinned (its children may be freed too).
    Unreachable {
        /// The object's address.
        addr: usize,
    },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Error::InvalidSizeClass { bytes } => write!(
                f,
                "invalid size class {bytes}: must be a multiple of 8 from 16 to 512 bytes"
            ),
            Error::InvalidMediumClass { bytes } => write!(
                f,
                "invalid medium size class {bytes}: must be a multiple of 8 from 520 to 8192 bytes"
            ),
            Error::InvalidLayout { reason } => write!(f, "invalid layout: {reason}"),
            Error::LayoutTooLarge { bytes, limit } => {
                write!(
                    f,
                    "layout of {bytes} bytes is larger than the {limit} bytes that fit"
                )
            }
            Error::NullAddress => write!(f, "null address"),
            Error::Misaligned { addr, align } => {
                write!(f, "address {addr:#x} is not aligned to {align} bytes")
            }
            Error::OutOfAddressSpace { addr, len } => write!(
                f,
                "range {addr:#x}+{len:#x} lies outside the 48-bit address space sencha maps"
            ),
            Error::InvalidLength { len } => write!(f, "invalid length {len}"),
            Error::Overlap { addr, existing } => write!(
                f,
                "range at {addr:#x} overlaps registered memory at {existing:#x} \
                 (spans and large objects may not share an 8 KiB page)"
            ),
            Error::AlreadyRegistered { addr } => write!(f, "{addr:#x} is already registered"),
            Error::NotRegistered { addr } => {
                write!(f, "{addr:#x} is not a registered span or large object")
            }
            Error::NotAnObject { addr } => {
                write!(f, "{addr:#x} is not the start of an allocated object")
            }
            Error::SlotInUse { addr } => write!(f, "slot {addr:#x} is already allocated"),
            Error::WordOutOfRange { word, words } => {
                write!(
                    f,
                    "word {word} is out of range for an object of {words} words"
                )
            }
            Error::OutOfMemory { bytes } => {
                write!(
                    f,
                    "the operating system refused {bytes} bytes of address space"
                )
            }
            Error::WrongOwner { addr } => write!(
                f,
                "{addr:#x} belongs to the other allocator (embedded vs custom) than this call expects"
            ),
            Error::InvalidConfig {
                field,
                value,
                reason,
            } => write!(f, "invalid heap configuration: {field} = {value}: {reason}"),
            Error::NoCompleteMark => write!(
                f,
                "no complete mark since the last sweep: sweeping now would free live objects"
            ),
            Error::MarkInProgress => write!(f, "a mark of this heap is already running"),
            Error::Pinned { addr } => write!(f, "{addr:#x} is pinned"),
            Error::NotPinned { addr } => write!(f, "{addr:#x} is not pinned"),
            Error::InvalidHandle => {
                write!(f, "a weak reference or ephemeron handle that was dropped")
            }
            Error::Unreachable { addr } => write!(
                f,
                "{addr:#x} was unreachable in the last mark and is due to be swept"
            ),
        }
    }
}

impl std::error::Error for Error {}
