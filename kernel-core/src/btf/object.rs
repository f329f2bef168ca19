//! `struct btf` objects and their lifetime: `btf_get`/`btf_put` on a `refcount_t`, the
//! last put unpublishing the id and freeing through RCU (kernel/bpf/btf.c).

use alloc::boxed::Box;
use alloc::string::String;
use alloc::vec::Vec;
use core::mem::ManuallyDrop;
use core::ptr::NonNull;

use super::name_index::NameIndex;
use super::registry::BtfIdr;
use super::types::BtfData;
use super::verifier::{BtfParseError, ParseOpts, Verified, btf_verify};
use crate::profile::Semantics;
use crate::sync::{Arc, AtomicBool, AtomicU32, Ordering, Refcount, SpinLock};

/// `struct btf`.
///
/// # Invariants
///
/// Lives in its own heap allocation, reached through [`BtfRef`]s, each of which owns
/// one count of `refcnt`, and through unreferenced pointers that check the IDR's freed
/// list first. When the count reaches zero, an unpublished object is freed at once; a
/// published one releases what it holds (`btf_free`) after an RCU grace period, through
/// `&self` only, and its memory stays in the [`BtfIdr`]'s quarantine until the IDR goes.
/// No `&mut Btf` or `Box<Btf>` is made while another reference may exist.
pub struct Btf {
    refcnt: Refcount,
    id: AtomicU32,
    name: String,
    kernel_btf: bool,
    data: BtfData,
    /// `btf->base_btf`: the base of a split BTF, whose data `data` reads. Its count is
    /// put once, by `btf_free` ([`Btf::release_contents`]), else when the object is
    /// dropped; the pointer in `data` stays readable for a late reader.
    base: ManuallyDrop<Option<BtfRef>>,
    base_put: AtomicBool,
    name_index: Option<NameIndex>,
    /// The IDR the object is published in; its count is put once, by
    /// `release_contents` (`btf_free`) or by `Drop`, as `idr_put` records.
    idr: ManuallyDrop<Option<Arc<BtfIdr>>>,
    idr_put: AtomicBool,
    struct_meta_tab: SpinLock<Option<StructMetaTab>>,
}

/// `btf->struct_meta_tab` as this layer keeps it: what the record layer attaches
/// (its struct-meta table, [`crate::record::field::struct_meta_tab`]), opaque here so
/// that verified BTF does not depend on records; released by `btf_free`.
pub type StructMetaTab = Box<dyn core::any::Any + Send + Sync>;

/// One counted reference to a [`Btf`]. Dropping it is `btf_put`.
pub struct BtfRef(NonNull<Btf>);

// SAFETY: `Btf` is immutable after construction except for its atomics, and the
// reference count makes the pointer valid while a `BtfRef` exists; `BtfRef` may move
// between threads as the kernel's `struct btf *` does.
unsafe impl Send for BtfRef {}
// SAFETY: see `Send`; shared access only reads immutable data or atomics.
unsafe impl Sync for BtfRef {}

/// Where a BTF comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BtfOrigin {
    /// Loaded by user space (`BPF_BTF_LOAD`).
    User,
    /// vmlinux or a module (`btf_is_kernel`).
    Kernel,
}

impl Btf {
    fn into_ref(self) -> BtfRef {
        crate::tally::btf_created();
        BtfRef(NonNull::from(Box::leak(Box::new(self))))
    }

    /// Wraps verified data (without a base, or with one that lives for ever) as a new
    /// object with one reference (`refcount_set(.., 1)`).
    #[allow(clippy::new_ret_no_self)]
    pub fn new(data: Verified<'static>, name: &str, origin: BtfOrigin) -> BtfRef {
        Self::make(data.into_data(), None, name, origin)
    }

    /// Wraps a split BTF verified on `base`'s data; the object holds `base`.
    pub(crate) fn new_split(
        data: Verified<'_>,
        base: BtfRef,
        name: &str,
        origin: BtfOrigin,
    ) -> BtfRef {
        let data = data.into_data();
        assert!(
            data.base_data()
                .is_some_and(|b| core::ptr::eq(b, base.data())),
            "a split BTF's object holds the base it was verified on"
        );
        Self::make(data, Some(base), name, origin)
    }

    fn make(data: BtfData, base: Option<BtfRef>, name: &str, origin: BtfOrigin) -> BtfRef {
        let kernel_btf = origin == BtfOrigin::Kernel;
        let name_index = kernel_btf.then(|| NameIndex::build(&data));
        Btf {
            refcnt: Refcount::new(1),
            id: AtomicU32::new(0),
            name: String::from(name),
            kernel_btf,
            data,
            base: ManuallyDrop::new(base),
            base_put: AtomicBool::new(false),
            name_index,
            idr: ManuallyDrop::new(None),
            idr_put: AtomicBool::new(false),
            struct_meta_tab: SpinLock::new(None),
        }
        .into_ref()
    }

    /// The parsed types.
    pub fn data(&self) -> &BtfData {
        &self.data
    }
    /// `btf->base_btf`: the base of a split BTF.
    pub fn base(&self) -> Option<&BtfRef> {
        self.base.as_ref()
    }
    /// `btf_get_name`.
    pub fn name(&self) -> &str {
        &self.name
    }
    /// `btf_is_kernel`.
    pub fn is_kernel(&self) -> bool {
        self.kernel_btf
    }
    /// `btf_is_module`: a kernel BTF not named "vmlinux".
    pub fn is_module(&self) -> bool {
        self.kernel_btf && self.name != "vmlinux"
    }
    /// `btf_is_vmlinux`: a kernel BTF without a base.
    pub fn is_vmlinux(&self) -> bool {
        self.kernel_btf && self.base.is_none()
    }
    /// `btf_obj_id`: the IDR id (0 while unpublished).
    pub fn id(&self) -> u32 {
        self.id.load(Ordering::Acquire)
    }
    /// `refcount_read(&btf->refcnt)`.
    pub fn refcount(&self) -> i32 {
        self.refcnt.read()
    }
    /// The name index of a kernel BTF (built when it is created).
    pub fn name_index(&self) -> Option<&NameIndex> {
        self.name_index.as_ref()
    }

    /// Calls `f` with `btf->struct_meta_tab` (under the object's lock). The record
    /// layer keeps a shared table there, which a holder keeps alive even if the BTF is
    /// freed meanwhile (a late reader of a freed BTF then reads a table the model
    /// still owns).
    pub fn with_struct_meta_tab<R>(
        &self,
        f: impl FnOnce(Option<&(dyn core::any::Any + Send + Sync)>) -> R,
    ) -> R {
        f(self.struct_meta_tab.lock().as_deref())
    }

    /// Sets the table once, while the BTF is being loaded (`btf_parse`).
    pub(crate) fn set_struct_meta_tab(&self, tab: StructMetaTab) {
        *self.struct_meta_tab.lock() = Some(tab);
    }

    pub(crate) fn set_published(&self, id: u32) {
        self.id.store(id, Ordering::Release);
    }
}

impl Btf {
    /// `btf_free`'s releases: the struct-meta table, the base reference, the IDR link.
    /// Through a shared reference: a late reader (the v6.4 race the model reports) may
    /// still hold one, so nothing it can read is written; the memory itself stays in
    /// the IDR's quarantine.
    fn release_contents(&self) {
        drop(self.struct_meta_tab.lock().take());
        if !self.base_put.swap(true, Ordering::AcqRel) {
            // SAFETY: the swap makes this the only place that takes the reference out,
            // and `Drop` skips it once `base_put` is set, so the `BtfRef` is dropped
            // exactly once; reading it copies the pointer without writing the field.
            drop(unsafe { core::ptr::read(&*self.base) });
        }
        if !self.idr_put.swap(true, Ordering::AcqRel) {
            // SAFETY: the swap makes this the only place that takes the `Arc` out, and
            // `Drop` skips it once `idr_put` is set; reading it copies the pointer
            // without writing the field.
            drop(unsafe { core::ptr::read(&*self.idr) });
        }
    }
}

impl Drop for Btf {
    fn drop(&mut self) {
        if !self.base_put.load(Ordering::Acquire) {
            // SAFETY: not taken out by `release_contents` (flag unset); `drop` runs once.
            unsafe { ManuallyDrop::drop(&mut self.base) };
        }
        if !self.idr_put.load(Ordering::Acquire) {
            // SAFETY: not taken out by `release_contents` (flag unset); `drop` runs once.
            unsafe { ManuallyDrop::drop(&mut self.idr) };
        }
    }
}

impl BtfRef {
    fn btf(&self) -> &Btf {
        // SAFETY: a live `BtfRef` owns a count, so the allocation is not freed (type
        // invariant of `Btf`).
        unsafe { self.0.as_ref() }
    }

    /// The parsed types.
    pub fn data(&self) -> &BtfData {
        &self.btf().data
    }

    /// Address identity, as the kernel compares `struct btf *`.
    pub fn ptr_eq(a: &BtfRef, b: &BtfRef) -> bool {
        a.0 == b.0
    }

    /// Raw address, for accounting and graphs.
    pub fn addr(&self) -> usize {
        self.0.as_ptr() as usize
    }

    /// `btf_try_get_by_ptr`-style increment that fails from zero
    /// (`refcount_inc_not_zero`, as `btf_get_fd_by_id` does).
    ///
    /// # Safety
    ///
    /// `p` must point to a `Btf` whose memory is still allocated (the caller is inside
    /// an RCU read-side section that began while the object was published).
    pub(crate) unsafe fn inc_not_zero(p: NonNull<Btf>) -> Option<BtfRef> {
        // SAFETY: the caller guarantees the memory is alive (RCU).
        let b = unsafe { p.as_ref() };
        if b.refcnt.inc_not_zero() {
            Some(BtfRef(p))
        } else {
            None
        }
    }

    /// Plain `btf_get` through a raw pointer, as `bpf_find_btf_id` does on module BTFs
    /// it found in the IDR (an increment from zero WARNs and saturates).
    ///
    /// # Safety
    ///
    /// `p` must point to a `Btf` whose memory is still allocated.
    pub(crate) unsafe fn get_raw(p: NonNull<Btf>) -> BtfRef {
        // SAFETY: the caller guarantees the memory is alive.
        unsafe { p.as_ref() }.refcnt.inc();
        BtfRef(p)
    }

    /// The object's address as a pointer (identity; never dereferenced by holders
    /// without a reference).
    pub fn raw(&self) -> NonNull<Btf> {
        self.0
    }

    /// The IDR this BTF is published in (`None` before `btf_alloc_id`).
    pub fn published_idr(&self) -> Option<Arc<BtfIdr>> {
        (*self.btf().idr).clone()
    }

    pub(crate) fn set_idr(&mut self, idr: Arc<BtfIdr>) {
        // SAFETY: only called by `BtfIdr::publish` on an object not yet published (id 0,
        // checked there), before any other thread can find it through the IDR; the
        // callers publish right after parsing, as `btf_new_fd` does.
        unsafe { (*self.0.as_ptr()).idr = ManuallyDrop::new(Some(idr)) };
    }
}

impl core::ops::Deref for BtfRef {
    type Target = Btf;
    fn deref(&self) -> &Btf {
        self.btf()
    }
}

/// `btf_get`: a new reference (`refcount_inc`).
pub fn btf_get(b: &BtfRef) -> BtfRef {
    b.btf().refcnt.inc();
    crate::trace::emit(crate::trace::Event::Btf {
        name: b.name(),
        addr: b.addr(),
        now: b.refcount(),
    });
    BtfRef(b.0)
}

/// Test support: puts one reference that the modelled kernel leaked (as
/// `btf_record_dup`'s failure path does), so that a model can check that everything
/// else is freed. The count must include that leaked reference.
pub fn btf_put_leaked_reference(b: &BtfRef) {
    if b.refcount() > 1 {
        crate::tally::btf_ref_acknowledged();
        drop(BtfRef(b.0));
    } else {
        crate::sync::warn::warn("btf_put_leaked_reference: no leaked reference to put");
    }
}

/// `btf_put`: drops a reference; the last one unpublishes the id (`btf_free_id`) and
/// frees the object after a grace period (`call_rcu(btf_free_rcu)`).
pub fn btf_put(b: BtfRef) {
    drop(b)
}

struct SendPtr(NonNull<Btf>);
// SAFETY: the pointer is only used by the RCU callback to free an object nobody else
// references any more.
unsafe impl Send for SendPtr {}

impl Drop for BtfRef {
    fn drop(&mut self) {
        let b = self.btf();
        let last = b.refcnt.dec_and_test();
        crate::trace::emit(crate::trace::Event::Btf {
            name: b.name(),
            addr: self.addr(),
            now: b.refcnt.read(),
        });
        if !last {
            return;
        }
        let p = SendPtr(self.0);
        match (*b.idr).clone() {
            Some(idr) => {
                idr.free_id(b);
                let idr2 = Arc::clone(&idr);
                idr.rcu().call_rcu(move || {
                    let p = p;
                    // The address is reported freed before anything is released, so a
                    // holder of an unreferenced pointer that checks `is_freed` first
                    // does not read what is being released.
                    idr2.mark_freed(p.0.as_ptr() as usize);
                    // SAFETY: the memory stays allocated until the IDR's quarantine
                    // frees it, when the IDR itself goes. The count reached zero and the
                    // id was unpublished before the grace period, so no counted
                    // reference and no IDR lookup reaches the object; a late reader of
                    // an unreferenced pointer (the v6.4 race) may still hold `&Btf`,
                    // which is why only a shared reference is made here.
                    let b = unsafe { p.0.as_ref() };
                    // btf_free: what the object holds is released now (its struct-meta
                    // records' references, its base, its IDR link); its memory is kept
                    // in the IDR's quarantine, so a late reader reads memory the model
                    // still owns and the IDR reports as freed.
                    b.release_contents();
                    crate::tally::btf_freed();
                    idr2.quarantine(p.0);
                });
            }
            None => {
                // SAFETY: the count reached zero and the object was never published, so
                // this was the last pointer to it.
                drop(unsafe { Box::from_raw(p.0.as_ptr()) });
                crate::tally::btf_freed();
            }
        }
    }
}

/// `btf_parse` for `BPF_BTF_LOAD`: verifies a user blob and returns an unpublished
/// object with one reference. Profile flags: those of [`btf_verify`].
pub fn btf_parse(data: &[u8], log_level: u32, sem: Semantics) -> Result<BtfRef, BtfParseError> {
    btf_parse_with_log(data, log_level, sem).map(|(b, _)| b)
}

/// [`btf_parse`], also returning the verifier log of a successful load (the kernel's
/// dump of every type, at log level 1).
pub fn btf_parse_with_log(
    data: &[u8],
    log_level: u32,
    sem: Semantics,
) -> Result<(BtfRef, Vec<u8>), BtfParseError> {
    let opts = ParseOpts {
        log_level,
        resolve: true,
        sem,
    };
    let (d, log) = btf_verify(Box::from(data), None, &opts)?;
    Ok((Btf::new(d, "", BtfOrigin::User), log.into_bytes()))
}

/// `btf_parse_base("vmlinux")` for the kernel's own BTF. The kernel checks only the
/// metas of its own BTF; `full` also runs the resolve pass, as user BTF gets.
pub fn btf_parse_vmlinux(data: &[u8], full: bool, sem: Semantics) -> Result<BtfRef, BtfParseError> {
    let opts = ParseOpts {
        log_level: 0,
        resolve: full,
        sem,
    };
    let (d, _) = btf_verify(Box::from(data), None, &opts)?;
    Ok(Btf::new(d, "vmlinux", BtfOrigin::Kernel))
}

/// `btf_parse_module`: a module's split BTF on top of `base` (vmlinux). With `full`
/// the resolve pass runs too (the base must then have been resolved).
pub fn btf_parse_module(
    name: &str,
    data: &[u8],
    base: &BtfRef,
    full: bool,
    sem: Semantics,
) -> Result<BtfRef, BtfParseError> {
    let opts = ParseOpts {
        log_level: 0,
        resolve: full && base.data().is_resolved(),
        sem,
    };
    let (d, _) = btf_verify(Box::from(data), Some(base.data()), &opts)?;
    Ok(Btf::new_split(d, btf_get(base), name, BtfOrigin::Kernel))
}
