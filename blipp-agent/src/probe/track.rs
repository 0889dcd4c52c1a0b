//! Per-subject state that a probe keeps between collections (previous
//! counter readings, the interned subject name), looked up by the name the
//! kernel prints.
//!
//! The kernel lists devices and interfaces in a stable order, so the entry
//! for the i-th line is almost always at index i: lookups are one string
//! comparison, with no hashing and no allocation in the steady state. A
//! subject that disappears is kept for [`FORGET_AFTER`] collections, so
//! that a device re-attached with zeroed counters is seen as a reset
//! rather than as a new device.

use crate::sample::Name;

/// Collections after which a subject not seen any more is forgotten.
pub const FORGET_AFTER: u64 = 64;

struct Entry<S> {
    key: String,
    subject: Name,
    last_seen: u64,
    state: S,
}

/// The state of every subject a probe has seen recently.
pub struct Tracked<S> {
    entries: Vec<Entry<S>>,
    collection: u64,
}

impl<S> Default for Tracked<S> {
    fn default() -> Self {
        Self {
            entries: Vec::new(),
            collection: 0,
        }
    }
}

impl<S: Default> Tracked<S> {
    /// Starts a collection: forgets subjects unseen for too long.
    pub fn begin(&mut self) {
        self.collection += 1;
        let now = self.collection;
        self.entries
            .retain(|e| now.saturating_sub(e.last_seen) <= FORGET_AFTER);
    }

    /// The subject name and state of `key`, which the kernel printed as its
    /// `position`-th entry; `subject` names a subject seen the first time.
    /// `is_new` is true when there was no state for it.
    pub fn get(
        &mut self,
        position: usize,
        key: &str,
        subject: impl FnOnce(&str) -> Name,
    ) -> (&Name, &mut S, bool) {
        let found = match self.entries.get(position) {
            Some(e) if e.key == key => Some(position),
            _ => self.entries.iter().position(|e| e.key == key),
        };
        let (index, is_new) = match found {
            Some(i) => (i, false),
            None => {
                let at = position.min(self.entries.len());
                self.entries.insert(
                    at,
                    Entry {
                        key: key.to_owned(),
                        subject: subject(key),
                        last_seen: 0,
                        state: S::default(),
                    },
                );
                (at, true)
            }
        };
        // Keep the kernel's order so that the next lookup is direct.
        let index = if index != position && position < self.entries.len() {
            self.entries.swap(index, position);
            position
        } else {
            index
        };
        let e = &mut self.entries[index];
        e.last_seen = self.collection;
        (&e.subject, &mut e.state, is_new)
    }

    /// How many subjects are tracked.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.entries.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn subject(k: &str) -> Name {
        Name::from(format!("disk:{k}"))
    }

    #[test]
    fn stable_order_reuses_entries() {
        let mut t: Tracked<u32> = Tracked::default();
        t.begin();
        for (i, k) in ["sda", "sdb"].iter().enumerate() {
            let (s, state, new) = t.get(i, k, subject);
            assert!(new);
            assert_eq!(&**s, format!("disk:{k}"));
            *state = 10 + u32::try_from(i).unwrap();
        }
        t.begin();
        // sdb now listed first (a device before it vanished).
        let (s, state, new) = t.get(0, "sdb", subject);
        assert_eq!((&**s, *state, new), ("disk:sdb", 11, false));
        let (_, state, new) = t.get(1, "sda", subject);
        assert_eq!((*state, new), (10, false));
        assert_eq!(t.len(), 2);
    }

    #[test]
    fn vanished_subjects_are_kept_then_forgotten() {
        let mut t: Tracked<u32> = Tracked::default();
        t.begin();
        *t.get(0, "loop0", subject).1 = 7;
        for _ in 0..FORGET_AFTER {
            t.begin();
        }
        let (_, state, new) = t.get(0, "loop0", subject);
        assert_eq!((*state, new), (7, false), "kept while recently seen");
        for _ in 0..=FORGET_AFTER {
            t.begin();
        }
        assert_eq!(t.len(), 0);
        assert!(t.get(3, "loop0", subject).2, "forgotten");
    }
}
