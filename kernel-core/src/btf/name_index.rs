//! A hash index from (kind, name) to the first type id with that kind and name, so
//! `btf_find_by_name_kind` on a kernel BTF is a probe instead of the kernel's scan.
//! It returns exactly what the scan returns: the smallest matching id of this level.

use hashbrown::hash_table::Entry;
use hashbrown::{DefaultHashBuilder, HashTable};

use core::hash::BuildHasher;

use super::types::BtfData;

/// Index over one BTF level's own types (not its base's).
pub struct NameIndex {
    table: HashTable<u32>,
    hasher: DefaultHashBuilder,
}

fn key_hash(h: &DefaultHashBuilder, kind: u8, name: &[u8]) -> u64 {
    h.hash_one((kind, name))
}

impl NameIndex {
    /// Indexes every named type of `data`'s own level, keeping the first id per key.
    pub fn build(data: &BtfData) -> NameIndex {
        let hasher = DefaultHashBuilder::default();
        let mut table = HashTable::with_capacity(data.nr_types_local() as usize);
        let v = data.view();
        for t in data.local_types_in(&v) {
            let name = v.str_by_offset(t.name_off()).unwrap_or(&[]);
            if name.is_empty() {
                continue;
            }
            let kind = t.kind_raw();
            let h = key_hash(&hasher, kind, name);
            let eq = |id: &u32| {
                v.type_by_id(*id).is_some_and(|o| {
                    o.kind_raw() == kind && v.str_by_offset(o.name_off()) == Some(name)
                })
            };
            let rehash = |id: &u32| {
                v.type_by_id(*id).map_or(0, |o| {
                    let n = v.str_by_offset(o.name_off()).unwrap_or(&[]);
                    key_hash(&hasher, o.kind_raw(), n)
                })
            };
            if let Entry::Vacant(e) = table.entry(h, eq, rehash) {
                e.insert(t.id());
            }
        }
        NameIndex { table, hasher }
    }

    /// The first id of `data`'s own level with this kind and name.
    pub fn find(&self, data: &BtfData, name: &[u8], kind: u8) -> Option<u32> {
        let h = key_hash(&self.hasher, kind, name);
        self.table
            .find(h, |id| {
                data.type_by_id(*id)
                    .is_some_and(|o| o.kind_raw() == kind && data.type_name(&o) == name)
            })
            .copied()
    }

    /// Number of keys.
    pub fn len(&self) -> usize {
        self.table.len()
    }

    /// True when no type is named.
    pub fn is_empty(&self) -> bool {
        self.table.is_empty()
    }
}
