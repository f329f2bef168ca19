//! The BTF IDR (`btf_idr` under `btf_idr_lock`), the kernel BTFs (vmlinux and the
//! modules' split BTFs) and the lookups on them: `btf_find_by_name_kind`,
//! `bpf_find_btf_id`, `btf_get_fd_by_id` (kernel/bpf/btf.c).

use alloc::vec::Vec;
use core::ptr::NonNull;

use hashbrown::HashMap;

use super::object::{Btf, BtfRef, btf_get};
use super::types::BtfData;
use super::uapi::BtfKind;
use crate::errno::{Errno, KResult};
use crate::module::{Module, ModuleState, try_module_get};
use crate::sync::{Arc, Rcu, SpinLock};

/// `BTF_DTOR_KFUNC_MAX_CNT` (kernel/bpf/btf.c).
const BTF_DTOR_KFUNC_MAX_CNT: usize = 256;

struct IdrInner {
    next: u32,
    map: HashMap<u32, NonNull<Btf>>,
    freed: Vec<usize>,
    /// Freed objects' memory (leaked boxes), returned when the IDR goes: a freed
    /// object's address is its identity, and a late reader may still hold `&Btf`.
    quarantine: Vec<NonNull<Btf>>,
}

impl Drop for IdrInner {
    fn drop(&mut self) {
        for p in self.quarantine.drain(..) {
            // SAFETY: each entry is a `Box<Btf>` leaked by `Btf::new` whose count reached
            // zero and whose contents were released; it is pushed once and returned once,
            // here. A late reader checks `is_freed` through the runtime's kernel BTFs,
            // which hold this IDR, so none is left when the IDR goes.
            drop(unsafe { alloc::boxed::Box::from_raw(p.as_ptr()) });
        }
    }
}

/// `btf_idr` with `btf_idr_lock`, and the RCU domain BTFs are freed through.
pub struct BtfIdr {
    inner: SpinLock<IdrInner>,
    rcu: Arc<Rcu>,
    any_freed: crate::sync::AtomicBool,
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
                freed: Vec::new(),
                quarantine: Vec::new(),
            }),
            rcu,
            any_freed: crate::sync::AtomicBool::new(false),
        })
    }

    /// The RCU domain.
    pub fn rcu(&self) -> &Rcu {
        &self.rcu
    }

    /// The RCU domain, shared.
    pub fn rcu_arc(&self) -> &Arc<Rcu> {
        &self.rcu
    }

    /// `btf_alloc_id`: publishes a new object under the next cyclic id (from 1).
    /// The object must not be published yet (-EINVAL).
    pub fn publish(this: &Arc<Self>, b: &mut BtfRef) -> KResult<u32> {
        if b.id() != 0 {
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

    /// Reports `addr` as freed from now on: called before a freed object's contents
    /// are released, so a reader that checks [`is_freed`](Self::is_freed) first never
    /// reads contents being released.
    pub(crate) fn mark_freed(&self, addr: usize) {
        self.inner.lock().freed.push(addr);
        self.any_freed.store(true, crate::sync::Ordering::Release);
    }

    /// Takes a freed object's memory, returned when the IDR itself goes (so a late
    /// reader of an unreferenced pointer is caught instead of reading returned memory).
    pub(crate) fn quarantine(&self, b: NonNull<Btf>) {
        self.inner.lock().quarantine.push(b);
    }

    /// True if a BTF published here has been freed at `addr`: a holder of an
    /// unreferenced pointer to it would now use freed memory.
    pub fn is_freed(&self, addr: usize) -> bool {
        if !self.any_freed.load(crate::sync::Ordering::Acquire) {
            return false;
        }
        self.inner.lock().freed.contains(&addr)
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
    if let Some(id) = btf.base().and_then(|base| find_in(base, name, kind)) {
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

/// One entry of `btf_modules`: a module's BTF, the module, `BTF_MODULE_F_LIVE`.
struct BtfModule {
    btf: BtfRef,
    module: Arc<Module>,
    live: bool,
}

/// One registered destructor (`struct btf_id_dtor_kfunc`), per owning BTF.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct DtorKfunc {
    btf_addr: usize,
    btf_id: u32,
    kfunc_btf_id: u32,
}

/// The kernel's BTFs: vmlinux (`bpf_get_btf_vmlinux`) and the modules' split BTFs,
/// all published in one IDR, with the destructor kfuncs registered on them.
pub struct KernelBtfs {
    idr: Arc<BtfIdr>,
    vmlinux: Option<BtfRef>,
    modules: SpinLock<Vec<BtfModule>>,
    dtors: SpinLock<Vec<DtorKfunc>>,
}

impl Drop for KernelBtfs {
    /// The kernel goes: its BTFs are put, then the RCU callbacks that free them run, so
    /// nothing stays queued (the queue would otherwise keep the IDR, and with it every
    /// freed BTF, alive).
    fn drop(&mut self) {
        drop(core::mem::take(&mut *self.dtors.lock()));
        drop(core::mem::take(&mut *self.modules.lock()));
        drop(self.vmlinux.take());
        self.idr.rcu().rcu_barrier();
    }
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
            dtors: SpinLock::new(Vec::new()),
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
    /// module list keeps one reference. The entry is not live yet.
    pub fn add_module(&self, mut btf: BtfRef, module: Arc<Module>) -> KResult<u32> {
        let id = BtfIdr::publish(&self.idr, &mut btf)?;
        module.set_state(ModuleState::Coming);
        self.modules.lock().push(BtfModule {
            btf,
            module,
            live: false,
        });
        Ok(id)
    }

    /// `btf_module_notify(MODULE_STATE_LIVE)`: sets `BTF_MODULE_F_LIVE`.
    pub fn module_live(&self, name: &str) -> KResult<()> {
        let mut g = self.modules.lock();
        let e = g
            .iter_mut()
            .find(|m| m.btf.name() == name)
            .ok_or(Errno::ENOENT)?;
        e.live = true;
        e.module.set_state(ModuleState::Live);
        Ok(())
    }

    /// `btf_module_notify(MODULE_STATE_GOING)`: removes the entry and drops the list's
    /// reference on the module's BTF; the module is going.
    pub fn remove_module(&self, name: &str) -> KResult<()> {
        let e = {
            let mut g = self.modules.lock();
            let i = g
                .iter()
                .position(|m| m.btf.name() == name)
                .ok_or(Errno::ENOENT)?;
            g.swap_remove(i)
        };
        e.module.set_state(ModuleState::Going);
        self.dtors.lock().retain(|d| d.btf_addr != e.btf.addr());
        drop(e);
        Ok(())
    }

    /// Module BTFs currently listed.
    pub fn modules(&self) -> Vec<BtfRef> {
        self.modules
            .lock()
            .iter()
            .map(|m| btf_get(&m.btf))
            .collect()
    }

    /// The module behind a listed module BTF.
    pub fn module_of(&self, btf: &BtfRef) -> Option<Arc<Module>> {
        self.modules
            .lock()
            .iter()
            .find(|m| BtfRef::ptr_eq(&m.btf, btf))
            .map(|m| Arc::clone(&m.module))
    }

    /// `btf_try_get_module`: the module of a module BTF, with a reference, only if its
    /// entry is live and `try_module_get` succeeds.
    pub fn btf_try_get_module(&self, btf: &BtfRef) -> Option<Arc<Module>> {
        let g = self.modules.lock();
        let e = g.iter().find(|m| BtfRef::ptr_eq(&m.btf, btf))?;
        if !e.live || !try_module_get(&e.module) {
            return None;
        }
        Some(Arc::clone(&e.module))
    }

    /// `register_btf_id_dtor_kfuncs` (kernel/bpf/btf.c): registers destructors on
    /// `owner` by name (the kernel resolves the names at build time with `BTF_ID`; a
    /// name missing from the BTF is the caller's error, -ENOENT, before the kernel's
    /// steps). Then, as the kernel: 256 or more at once is -E2BIG; each destructor must
    /// be a FUNC returning void with one argument whose type is a PTR itself, not
    /// behind a typedef or modifier (`btf_check_dtor_kfuncs`, -EINVAL); a module
    /// registers once (a second call WARNs, -EINVAL); the BTF's table may not reach
    /// 256 (-E2BIG). Any of these failures frees the BTF's whole table
    /// (`btf_free_dtor_kfunc_tab`), earlier registrations included.
    pub fn register_btf_id_dtor_kfuncs(
        &self,
        owner: &BtfRef,
        pairs: &[(&str, &str)],
    ) -> KResult<()> {
        let d = owner.data();
        let mut ids = Vec::with_capacity(pairs.len().min(BTF_DTOR_KFUNC_MAX_CNT));
        for (ty, func) in pairs.iter().take(BTF_DTOR_KFUNC_MAX_CNT) {
            let tid = btf_find_by_name_kind(owner, ty, BtfKind::Struct as u8)?;
            let fid = btf_find_by_name_kind(owner, func, BtfKind::Func as u8)?;
            ids.push((tid, fid));
        }
        let check_dtor = |fid: u32| -> KResult<()> {
            let f = d.type_by_id(fid).ok_or(Errno::EINVAL)?;
            // btf_check_dtor_kfuncs: 'void func(type *)', the argument a PTR itself.
            let proto = d.type_by_id(f.type_id()).ok_or(Errno::EINVAL)?;
            if proto.kind() != BtfKind::FuncProto || proto.type_id() != 0 || proto.vlen() != 1 {
                return Err(Errno::EINVAL);
            }
            let (_, arg) = proto.param(0);
            if d.type_by_id(arg).is_none_or(|a| a.kind() != BtfKind::Ptr) {
                return Err(Errno::EINVAL);
            }
            Ok(())
        };
        let mut g = self.dtors.lock();
        let tab_cnt = g.iter().filter(|x| x.btf_addr == owner.addr()).count();
        let res = if pairs.len() >= BTF_DTOR_KFUNC_MAX_CNT {
            Err(Errno::E2BIG)
        } else if let Err(e) = ids.iter().try_for_each(|&(_, fid)| check_dtor(fid)) {
            Err(e)
        } else if tab_cnt > 0 && owner.is_module() {
            crate::sync::warn::warn("register_btf_id_dtor_kfuncs: a module registers once");
            Err(Errno::EINVAL)
        } else if tab_cnt + ids.len() >= BTF_DTOR_KFUNC_MAX_CNT {
            Err(Errno::E2BIG)
        } else {
            Ok(())
        };
        match res {
            Ok(()) => {
                g.extend(ids.iter().map(|&(tid, fid)| DtorKfunc {
                    btf_addr: owner.addr(),
                    btf_id: tid,
                    kfunc_btf_id: fid,
                }));
                g.sort_by_key(|x| (x.btf_addr, x.btf_id));
                Ok(())
            }
            Err(e) => {
                g.retain(|x| x.btf_addr != owner.addr());
                Err(e)
            }
        }
    }

    /// `btf_find_dtor_kfunc`: the destructor registered in `btf` for its type
    /// `btf_id`; -ENOENT if none.
    pub fn btf_find_dtor_kfunc(&self, btf: &BtfRef, btf_id: u32) -> KResult<u32> {
        self.dtors
            .lock()
            .iter()
            .find(|d| d.btf_addr == btf.addr() && d.btf_id == btf_id)
            .map(|d| d.kfunc_btf_id)
            .ok_or(Errno::ENOENT)
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
