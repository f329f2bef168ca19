//! `enum btf_field_type`, `struct btf_field`, `struct btf_record` (include/linux/bpf.h).

use alloc::string::String;
use alloc::vec::Vec;
use core::ptr::NonNull;

use crate::btf::{Btf, BtfIdr, BtfRef};
use crate::module::Module;
use crate::profile::Semantics;
use crate::sync::Arc;

/// `enum btf_field_type`: one bit per kind of special field (bit values as in current
/// kernels; only their distinctness matters to the model).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug, Default)]
pub struct BtfFieldType(pub u32);

#[allow(missing_docs)]
impl BtfFieldType {
    pub const SPIN_LOCK: Self = Self(1 << 0);
    pub const TIMER: Self = Self(1 << 1);
    pub const KPTR_UNREF: Self = Self(1 << 2);
    pub const KPTR_REF: Self = Self(1 << 3);
    pub const KPTR_PERCPU: Self = Self(1 << 4);
    pub const LIST_HEAD: Self = Self(1 << 5);
    pub const LIST_NODE: Self = Self(1 << 6);
    pub const RB_ROOT: Self = Self(1 << 7);
    pub const RB_NODE: Self = Self(1 << 8);
    pub const REFCOUNT: Self = Self(1 << 9);
    pub const WORKQUEUE: Self = Self(1 << 10);
    pub const UPTR: Self = Self(1 << 11);
    pub const RES_SPIN_LOCK: Self = Self(1 << 12);
    pub const TASK_WORK: Self = Self(1 << 13);
    /// `BPF_KPTR`.
    pub const KPTR: Self = Self(Self::KPTR_UNREF.0 | Self::KPTR_REF.0 | Self::KPTR_PERCPU.0);
    /// `BPF_GRAPH_ROOT`.
    pub const GRAPH_ROOT: Self = Self(Self::LIST_HEAD.0 | Self::RB_ROOT.0);
    /// `BPF_GRAPH_NODE`.
    pub const GRAPH_NODE: Self = Self(Self::LIST_NODE.0 | Self::RB_NODE.0);
    /// Every type.
    pub const ALL: [Self; 14] = [
        Self::SPIN_LOCK,
        Self::TIMER,
        Self::KPTR_UNREF,
        Self::KPTR_REF,
        Self::KPTR_PERCPU,
        Self::LIST_HEAD,
        Self::LIST_NODE,
        Self::RB_ROOT,
        Self::RB_NODE,
        Self::REFCOUNT,
        Self::WORKQUEUE,
        Self::UPTR,
        Self::RES_SPIN_LOCK,
        Self::TASK_WORK,
    ];

    /// Union of two masks.
    pub const fn or(self, o: Self) -> Self {
        Self(self.0 | o.0)
    }
    /// True if the masks share a bit.
    pub const fn intersects(self, o: Self) -> bool {
        self.0 & o.0 != 0
    }

    /// The name this model prints (`kptr_ref`, `spin_lock`, ...).
    pub fn name(self) -> &'static str {
        match self {
            Self::SPIN_LOCK => "spin_lock",
            Self::RES_SPIN_LOCK => "res_spin_lock",
            Self::TIMER => "timer",
            Self::WORKQUEUE => "wq",
            Self::TASK_WORK => "task_work",
            Self::KPTR_UNREF => "kptr_unref",
            Self::KPTR_REF => "kptr_ref",
            Self::KPTR_PERCPU => "percpu_kptr",
            Self::UPTR => "uptr",
            Self::LIST_HEAD => "list_head",
            Self::LIST_NODE => "list_node",
            Self::RB_ROOT => "rb_root",
            Self::RB_NODE => "rb_node",
            Self::REFCOUNT => "refcount",
            _ => "(mask)",
        }
    }

    /// The C struct name the kernel matches for struct-typed fields.
    pub fn struct_name(self) -> Option<&'static str> {
        Some(match self {
            Self::SPIN_LOCK => "bpf_spin_lock",
            Self::RES_SPIN_LOCK => "bpf_res_spin_lock",
            Self::TIMER => "bpf_timer",
            Self::WORKQUEUE => "bpf_wq",
            Self::TASK_WORK => "bpf_task_work",
            Self::LIST_HEAD => "bpf_list_head",
            Self::LIST_NODE => "bpf_list_node",
            Self::RB_ROOT => "bpf_rb_root",
            Self::RB_NODE => "bpf_rb_node",
            Self::REFCOUNT => "bpf_refcount",
            _ => return None,
        })
    }

    /// `btf_field_type_size`. Profile flag `refcount` (node owner field).
    pub fn size(self, sem: &Semantics) -> u32 {
        match self {
            Self::SPIN_LOCK | Self::RES_SPIN_LOCK | Self::REFCOUNT => 4,
            Self::TIMER | Self::WORKQUEUE => 16,
            Self::TASK_WORK => 8,
            Self::KPTR_UNREF | Self::KPTR_REF | Self::KPTR_PERCPU | Self::UPTR => 8,
            Self::LIST_HEAD | Self::RB_ROOT => 16,
            Self::LIST_NODE => {
                if sem.refcount {
                    24
                } else {
                    16
                }
            }
            Self::RB_NODE => {
                if sem.refcount {
                    32
                } else {
                    24
                }
            }
            _ => 0,
        }
    }

    /// `btf_field_type_align`.
    pub fn align(self) -> u32 {
        match self {
            Self::SPIN_LOCK | Self::RES_SPIN_LOCK | Self::REFCOUNT => 4,
            _ => 8,
        }
    }

    /// The field types only some profiles know, each with whether `sem` knows it.
    fn profile_gated(sem: &Semantics) -> [(Self, bool); 6] {
        [
            (Self::REFCOUNT, sem.refcount),
            (Self::KPTR_PERCPU, sem.percpu_kptr),
            (Self::WORKQUEUE, sem.wq),
            (Self::UPTR, sem.uptr),
            (Self::RES_SPIN_LOCK, sem.res_spin_lock),
            (Self::TASK_WORK, sem.task_work),
        ]
    }

    /// Whether the profile knows this field type.
    pub fn known(self, sem: &Semantics) -> bool {
        Self::profile_gated(sem)
            .iter()
            .all(|&(t, known)| t != self || known)
    }

    /// The subset of `mask` the profile knows (bit operations: it runs for every
    /// `btf_find_field`).
    pub fn known_mask(mask: Self, sem: &Semantics) -> Self {
        const ALL_BITS: u32 = {
            let mut m = 0;
            let mut i = 0;
            while i < BtfFieldType::ALL.len() {
                m |= BtfFieldType::ALL[i].0;
                i += 1;
            }
            m
        };
        let mut m = mask.0 & ALL_BITS;
        for (t, known) in Self::profile_gated(sem) {
            if !known {
                m &= !t.0;
            }
        }
        Self(m)
    }
}

/// Which BTF a kptr points into, and whether the field holds a reference on it.
pub enum KptrBtf {
    /// A reference the field owns (kernel BTFs; program BTF where the profile
    /// references it).
    Held(BtfRef),
    /// The program BTF, not referenced (v6.12+): kept alive by whoever owns the
    /// record (the map's BTF, or the BTF whose struct metas hold it).
    Borrowed(UnrefBtf),
}

/// An unreferenced `struct btf *` (a local kptr's `kptr.btf` from v6.12): the kernel
/// reads through it without a reference, trusting the record's owner to keep the BTF
/// alive (`map->btf`, put after the record in `bpf_map_free`).
///
/// # Invariants
///
/// `idr` is the IDR the BTF was published in when the pointer was taken, or `None` if
/// it was not yet published (a struct meta's pointer to its own BTF, taken by
/// `btf_parse_struct_metas` before `btf_alloc_id`). With `Some`, the `Btf` at `ptr`
/// stays allocated while `idr` does: a published BTF's memory is freed only when its
/// IDR goes (it is quarantined there after its RCU free), and this holds the IDR.
pub struct UnrefBtf {
    ptr: NonNull<Btf>,
    idr: Option<Arc<BtfIdr>>,
}

// SAFETY: the pointer is dereferenced only where the invariant (or, in
// `obj::runtime::kptr_btf`, the runtime's own IDR) keeps the memory allocated, and only
// immutable fields are read; the IDR is `Send + Sync`.
unsafe impl Send for UnrefBtf {}
// SAFETY: see `Send`.
unsafe impl Sync for UnrefBtf {}

impl UnrefBtf {
    /// An unreferenced pointer to `b` (no count taken).
    pub fn new(b: &BtfRef) -> UnrefBtf {
        UnrefBtf {
            ptr: b.raw(),
            idr: b.published_idr(),
        }
    }

    /// The pointer (identity; see [`obj::runtime`](crate::obj::runtime) for reads).
    pub fn as_ptr(&self) -> NonNull<Btf> {
        self.ptr
    }

    /// `btf_is_kernel(btf)` through the unreferenced pointer, as `btf_record_free` and
    /// `btf_record_dup` read it (kernel/bpf/syscall.c). A BTF already freed (its RCU
    /// free ran: the IDR lists its address) is the kernel's use after free: reported
    /// (a WARN naming `site`, counted in the suite tally) and not read. `None` also for
    /// a pointer taken before the BTF was published, which is not read (see the type's
    /// invariants).
    pub fn btf_is_kernel(&self, site: &'static str) -> Option<bool> {
        let idr = self.idr.as_ref()?;
        if idr.is_freed(self.ptr.as_ptr() as usize) {
            crate::tally::btf_use_after_free(site);
            return None;
        }
        // SAFETY: `idr` is held, so the memory is allocated (type invariant); it is not
        // on the freed list, and `kernel_btf` is never written after construction.
        Some(unsafe { self.ptr.as_ref() }.is_kernel())
    }
}

impl Clone for UnrefBtf {
    fn clone(&self) -> UnrefBtf {
        UnrefBtf {
            ptr: self.ptr,
            idr: self.idr.clone(),
        }
    }
}

// SAFETY: the pointer is an identity and is dereferenced only after the runtime's
// liveness check (see `obj::runtime::kptr_btf`).
unsafe impl Send for BtfFieldGraphRoot {}
// SAFETY: see `Send`.
unsafe impl Sync for BtfFieldGraphRoot {}

impl KptrBtf {
    /// Address of the `struct btf`, for identity (`btf_record_equal`).
    pub fn addr(&self) -> usize {
        match self {
            KptrBtf::Held(b) => b.addr(),
            KptrBtf::Borrowed(p) => p.as_ptr().as_ptr() as usize,
        }
    }
    /// True when the field holds a reference.
    pub fn is_held(&self) -> bool {
        matches!(self, KptrBtf::Held(_))
    }
}

/// The destructor a referenced kptr is released with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KptrDtor {
    /// None (unreferenced kptrs; local kptrs since v6.4).
    None,
    /// `__bpf_obj_drop_impl` (local kptrs in c8e18754).
    ObjDrop,
    /// A registered destructor kfunc of the pointee's BTF.
    Kfunc {
        /// Function name (`bpf_task_release_dtor`, ...).
        name: String,
        /// Its BTF id.
        btf_id: u32,
    },
}

/// `struct btf_field_kptr`.
pub struct BtfFieldKptr {
    /// The pointee's BTF.
    pub btf: KptrBtf,
    /// The pointee's type id in that BTF.
    pub btf_id: u32,
    /// The pointee's name (read at parse time).
    pub pointee: String,
    /// True when the pointee is a program-local type (`!btf_is_kernel(btf)`).
    pub local: bool,
    /// The destructor.
    pub dtor: KptrDtor,
    /// The module reference taken for a module destructor.
    pub module: Option<Arc<Module>>,
    /// A local pointee's struct meta, looked up once when a map's record is checked
    /// (see `btf_check_and_fixup_record`); `None` elsewhere, where each release looks
    /// it up (`btf_find_struct_meta`) as the kernel does every time.
    pub pointee_meta: Option<MetaRec>,
}

/// `struct btf_field_graph_root`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BtfFieldGraphRoot {
    /// The BTF the root was parsed from (no reference is held; identity only, read
    /// through the runtime's liveness check).
    pub btf_ptr: NonNull<Btf>,
    /// The contained struct.
    pub value_btf_id: u32,
    /// Byte offset of the node member in the contained struct.
    pub node_offset: u32,
    /// `value_rec` set by `btf_check_and_fixup_fields`: the contained struct's struct
    /// meta in that BTF (identified by its type id).
    pub value_rec: Option<u32>,
}

/// `struct btf_field`.
pub struct BtfField {
    /// Byte offset in the value.
    pub offset: u32,
    /// `btf_field_type_size`.
    pub size: u32,
    /// Field type.
    pub ty: BtfFieldType,
    /// For kptr and uptr fields.
    pub kptr: Option<BtfFieldKptr>,
    /// For list heads and rb roots.
    pub graph_root: Option<BtfFieldGraphRoot>,
}

/// `struct btf_record`. "No record" is `None` and "parse failed" an `Err` at the API.
pub struct BtfRecord {
    /// `field_mask`.
    pub field_mask: BtfFieldType,
    /// `spin_lock_off` (-EINVAL when absent).
    pub spin_lock_off: i32,
    /// `res_spin_lock_off`.
    pub res_spin_lock_off: i32,
    /// `timer_off`.
    pub timer_off: i32,
    /// `wq_off`.
    pub wq_off: i32,
    /// `refcount_off`.
    pub refcount_off: i32,
    /// `task_work_off`.
    pub task_work_off: i32,
    /// `fields[cnt]`, sorted by offset.
    pub fields: Vec<BtfField>,
}

impl BtfRecord {
    /// `btf_record_has_field`.
    pub fn has_field(&self, t: BtfFieldType) -> bool {
        self.field_mask.intersects(t)
    }

    /// `btf_record_find`: the field of a type in `mask` at `offset`.
    pub fn find(&self, offset: u32, mask: BtfFieldType) -> Option<&BtfField> {
        self.fields
            .iter()
            .find(|f| f.offset == offset && f.ty.intersects(mask))
    }
}

/// `struct btf_struct_metas`: (type id, record), sorted by type id.
pub struct BtfStructMetas {
    pub(crate) types: Vec<(u32, BtfRecord)>,
}

impl BtfStructMetas {
    /// `btf_find_struct_meta`.
    pub fn find(&self, btf_id: u32) -> Option<&BtfRecord> {
        self.get(self.position(btf_id)?)
    }

    /// Where `btf_id`'s record is in the table.
    pub fn position(&self, btf_id: u32) -> Option<usize> {
        self.types.binary_search_by_key(&btf_id, |(id, _)| *id).ok()
    }

    /// The record at a position from [`Self::position`].
    pub fn get(&self, at: usize) -> Option<&BtfRecord> {
        self.types.get(at).map(|(_, r)| r)
    }

    /// The entries.
    pub fn iter(&self) -> impl Iterator<Item = (u32, &BtfRecord)> {
        self.types.iter().map(|(i, r)| (*i, r))
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.types.len()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.types.is_empty()
    }
}

/// A local type's record: the struct-meta table it lives in and its position there.
#[derive(Clone)]
pub struct MetaRec {
    tab: Arc<BtfStructMetas>,
    at: usize,
}

impl MetaRec {
    /// The record (`btf_find_struct_meta(btf, id)->record`).
    pub fn rec(&self) -> Option<&BtfRecord> {
        self.tab.get(self.at)
    }
}

impl core::fmt::Debug for MetaRec {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("MetaRec").field("at", &self.at).finish()
    }
}

/// `btf->struct_meta_tab`: the table attached to `btf` by `btf_parse`, if any.
pub fn struct_meta_tab(btf: &Btf) -> Option<Arc<BtfStructMetas>> {
    btf.with_struct_meta_tab(|t| {
        t.and_then(|t| t.downcast_ref::<Arc<BtfStructMetas>>())
            .cloned()
    })
}

/// Attaches `tab` to `btf` as its `struct_meta_tab`, released by `btf_free`.
pub(crate) fn set_struct_meta_tab(btf: &Btf, tab: Arc<BtfStructMetas>) {
    btf.set_struct_meta_tab(alloc::boxed::Box::new(tab));
}

/// `btf_find_struct_meta` (kernel/bpf/btf.c) as a handle that keeps the table alive.
pub fn find_meta(btf: &Btf, id: u32) -> Option<MetaRec> {
    let tab = struct_meta_tab(btf)?;
    let at = tab.position(id)?;
    Some(MetaRec { tab, at })
}
