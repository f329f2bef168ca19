//! The BTF IDR (`btf_idr` under `btf_idr_lock`), the kernel BTFs (vmlinux and the
//! modules' split BTFs) and the lookups on them: `btf_find_by_name_kind`,
//! `bpf_find_btf_id`, `btf_get_fd_by_id` (kernel/bpf/btf.c).

use alloc::vec::Vec;
use core::ptr::NonNull;

use hashbrown::HashMap;

use super::object::{Btf, BtfRef, btf_get};
use super::types::BtfData;
use crate::errno::{Errno, KResult};
use crate::sync::{Arc, Rcu, SpinLock};

struct IdrInner {
    next: u32,
    map: HashMap<u32, NonNull<Btf>>,
}

/// `btf_idr` with `btf_idr_lock`, and the RCU domain BTFs are freed through.
pub struct BtfIdr {
    inner: SpinLock<IdrInner>,
    rcu: Arc<Rcu>,
}

// SAFETY: the raw pointers in the map are only dereferenced under RCU protection
// (see `btf_get_by_id` and `bpf_find_btf_id`), as the kernel's IDR entries are.
unsafe impl Send for BtfIdr {}
// SAFETY: see `Send`; the map itself is behind the spin lock.
unsafe impl Sync for BtfIdr {}

impl BtfIdr {
    /// An empty IDR freeing through `rcu`.
    pub fn new(rcu: Arc<Rcu>) -> Arc<BtfIdr> {
        Arc::new(BtfIdr {
            inner: SpinLock::new(IdrInner {
                next: 1,
                map: HashMap::new(),
            }),
            rcu,
        })
    }

    /// The RCU domain.
    pub fn rcu(&self) -> &Rcu {
        &self.rcu
    }

    /// `btf_alloc_id`: publishes a new object under the next cyclic id (from 1).
    /// The object must be fresh (one reference, unpublished).
    pub fn publish(this: &Arc<Self>, b: &mut BtfRef) -> KResult<u32> {
        if b.id() != 0 || b.refcount() != 1 {
            return Err(Errno::EINVAL);
        }
        b.set_idr(Arc::clone(this));
        let mut g = this.inner.lock();
        let mut id = g.next;
        let start = id;
        while g.map.contains_key(&id) {
            id = if id == i32::MAX as u32 { 1 } else { id + 1 };
            if id == start {
                return Err(Errno::ENOSPC);
            }
        }
        g.next = if id == i32::MAX as u32 { 1 } else { id + 1 };
        g.map.insert(id, b.raw());
        b.set_published(id);
        Ok(id)
    }

    /// `btf_free_id`.
    pub(crate) fn free_id(&self, b: &Btf) {
        let id = b.id();
        if id != 0 {
            self.inner.lock().map.remove(&id);
        }
    }

    /// Number of published objects.
    pub fn len(&self) -> usize {
        self.inner.lock().map.len()
    }

    /// True when nothing is published.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// `btf_get_fd_by_id`'s lookup: under `rcu_read_lock`, find the id and take a
    /// reference with `refcount_inc_not_zero`; -ENOENT if absent or already dying.
    pub fn btf_get_by_id(&self, id: u32) -> KResult<BtfRef> {
        let _rcu = self.rcu.read_lock();
        let p = self.inner.lock().map.get(&id).copied();
        let Some(p) = p else {
            return Err(Errno::ENOENT);
        };
        // SAFETY: the entry was in the IDR inside this RCU section, and objects are
        // freed only by an RCU callback queued after their id left the IDR.
        unsafe { BtfRef::inc_not_zero(p) }.ok_or(Errno::ENOENT)
    }

    /// Module BTFs in id order (what `idr_for_each_entry` visits), as raw entries.
    fn modules_from(&self, after: u32) -> Option<(u32, NonNull<Btf>)> {
        let g = self.inner.lock();
        g.map
            .iter()
            .filter(|(id, p)| {
                // SAFETY: the lock is held, so the entry has not been unpublished, and
                // its memory lives until a grace period after unpublishing.
                **id > after && unsafe { p.as_ref() }.is_module()
            })
            .min_by_key(|(id, _)| **id)
            .map(|(id, p)| (*id, *p))
    }
}

/// `btf_find_by_name_kind`: the first id, over the whole base chain, of a type with
/// this kind and exact name; -ENOENT if none. Kernel BTFs use their name index, other
/// BTFs the kernel's linear scan.
pub fn btf_find_by_name_kind(btf: &BtfRef, name: &str, kind: u8) -> KResult<u32> {
    find_in(btf, name.as_bytes(), kind).ok_or(Errno::ENOENT)
}

fn find_in(btf: &Btf, name: &[u8], kind: u8) -> Option<u32> {
    let data = btf.data();
    if let Some(id) = data.base().and_then(|base| find_in(base, name, kind)) {
        return Some(id);
    }
    match btf.name_index() {
        Some(ix) => ix.find(data, name, kind),
        None => scan(data, name, kind),
    }
}

fn scan(data: &BtfData, name: &[u8], kind: u8) -> Option<u32> {
    data.local_types()
        .find(|t| t.kind_raw() == kind && data.type_name(t) == name)
        .map(|t| t.id())
}

/// The kernel's BTFs: vmlinux (`bpf_get_btf_vmlinux`) and the modules' split BTFs,
/// all published in one IDR.
pub struct KernelBtfs {
    idr: Arc<BtfIdr>,
    vmlinux: Option<BtfRef>,
    modules: SpinLock<Vec<BtfRef>>,
}

impl KernelBtfs {
    /// A kernel with the given vmlinux BTF (`None` models a kernel without
    /// CONFIG_DEBUG_INFO_BTF). vmlinux is published first, as at boot.
    pub fn new(idr: Arc<BtfIdr>, vmlinux: Option<BtfRef>) -> KResult<KernelBtfs> {
        let vmlinux = match vmlinux {
            Some(mut v) => {
                BtfIdr::publish(&idr, &mut v)?;
                Some(v)
            }
            None => None,
        };
        Ok(KernelBtfs {
            idr,
            vmlinux,
            modules: SpinLock::new(Vec::new()),
        })
    }

    /// The IDR.
    pub fn idr(&self) -> &Arc<BtfIdr> {
        &self.idr
    }

    /// `bpf_get_btf_vmlinux` (no reference taken).
    pub fn vmlinux(&self) -> Option<&BtfRef> {
        self.vmlinux.as_ref()
    }

    /// `btf_module_notify(MODULE_STATE_COMING)`: publishes a module's BTF; the
    /// module list keeps one reference.
    pub fn add_module(&self, mut btf: BtfRef) -> KResult<u32> {
        let id = BtfIdr::publish(&self.idr, &mut btf)?;
        self.modules.lock().push(btf);
        Ok(id)
    }

    /// `btf_module_notify(MODULE_STATE_GOING)`: drops the list's reference.
    pub fn remove_module(&self, name: &str) -> KResult<()> {
        let b = {
            let mut g = self.modules.lock();
            let i = g
                .iter()
                .position(|b| b.name() == name)
                .ok_or(Errno::ENOENT)?;
            g.swap_remove(i)
        };
        drop(b);
        Ok(())
    }

    /// Module BTFs currently listed.
    pub fn modules(&self) -> Vec<BtfRef> {
        self.modules.lock().iter().map(btf_get).collect()
    }

    /// `bpf_find_btf_id`: look `name` of `kind` up in vmlinux, then in each module BTF
    /// in IDR order. On success the caller owns one reference on the returned BTF.
    /// -EINVAL without vmlinux BTF; otherwise the last search's -ENOENT.
    pub fn bpf_find_btf_id(&self, name: &str, kind: u8) -> KResult<(u32, BtfRef)> {
        let Some(vmlinux) = self.vmlinux.as_ref() else {
            return Err(Errno::EINVAL);
        };
        if let Ok(id) = btf_find_by_name_kind(vmlinux, name, kind) {
            return Ok((id, btf_get(vmlinux)));
        }
        let mut after = 0;
        let mut ret = Err(Errno::ENOENT);
        loop {
            let _rcu = self.idr.rcu().read_lock();
            let Some((id, p)) = self.idr.modules_from(after) else {
                break;
            };
            after = id;
            // SAFETY: the entry was found in the IDR inside this RCU section. The kernel
            // takes a plain reference here (refcount_inc), modelled as such.
            let m = unsafe { BtfRef::get_raw(p) };
            drop(_rcu);
            match btf_find_by_name_kind(&m, name, kind) {
                Ok(tid) => return Ok((tid, m)),
                Err(e) => ret = Err(e),
            }
        }
        ret
    }
}
