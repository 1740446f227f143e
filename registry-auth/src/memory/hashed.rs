//! One table shape for the two kinds of stored bearer secrets (access
//! tokens and refresh tokens): rows by id, an index by secret hash.

use std::collections::HashMap;

use time::OffsetDateTime;

use crate::credentials::{AccessToken, AccessTokenId, TokenHash};
use crate::refresh::RefreshToken;
use crate::subject::Subject;

/// What the table needs of a row.
pub(super) trait Hashed: Clone {
    fn id(&self) -> AccessTokenId;
    fn hash(&self) -> TokenHash;
    fn owner(&self) -> &Subject;
    fn created(&self) -> OffsetDateTime;
    fn set_last_used(&mut self, at: OffsetDateTime);
}

macro_rules! hashed {
    ($row:ty) => {
        impl Hashed for $row {
            fn id(&self) -> AccessTokenId {
                self.id
            }
            fn hash(&self) -> TokenHash {
                self.hash
            }
            fn owner(&self) -> &Subject {
                &self.owner
            }
            fn created(&self) -> OffsetDateTime {
                self.created
            }
            fn set_last_used(&mut self, at: OffsetDateTime) {
                self.last_used = Some(at);
            }
        }
    };
}

hashed!(AccessToken);
hashed!(RefreshToken);

/// Rows by id, and the id of each row by its secret's hash; the two maps
/// change together.
#[derive(Debug)]
pub(super) struct HashedTable<T> {
    rows: HashMap<AccessTokenId, T>,
    by_hash: HashMap<TokenHash, AccessTokenId>,
}

impl<T> Default for HashedTable<T> {
    fn default() -> Self {
        HashedTable {
            rows: HashMap::new(),
            by_hash: HashMap::new(),
        }
    }
}

impl<T: Hashed> HashedTable<T> {
    /// Whether a row with `row`'s id or hash is stored.
    pub(super) fn holds(&self, row: &T) -> bool {
        self.rows.contains_key(&row.id()) || self.by_hash.contains_key(&row.hash())
    }

    pub(super) fn insert(&mut self, row: T) {
        self.by_hash.insert(row.hash(), row.id());
        self.rows.insert(row.id(), row);
    }

    pub(super) fn values(&self) -> impl Iterator<Item = &T> {
        self.rows.values()
    }

    pub(super) fn find_by_hash(&self, hash: &TokenHash) -> Option<T> {
        self.by_hash
            .get(hash)
            .and_then(|id| self.rows.get(id))
            .cloned()
    }

    /// Every row, or `owner`'s, oldest first.
    pub(super) fn list(&self, owner: Option<&Subject>) -> Vec<T> {
        let mut rows: Vec<T> = self
            .rows
            .values()
            .filter(|t| owner.is_none_or(|o| t.owner() == o))
            .cloned()
            .collect();
        rows.sort_by_key(|t| (t.created(), t.id()));
        rows
    }

    /// Removes a row; `None` when there is none.
    pub(super) fn remove(&mut self, id: &AccessTokenId) -> Option<()> {
        let row = self.rows.remove(id)?;
        self.by_hash.remove(&row.hash());
        Some(())
    }

    /// Records a use; `None` when there is no such row.
    pub(super) fn touch(&mut self, id: &AccessTokenId, at: OffsetDateTime) -> Option<()> {
        self.rows.get_mut(id)?.set_last_used(at);
        Some(())
    }

    /// Removes every row `subject` owns.
    pub(super) fn remove_owned_by(&mut self, subject: &Subject) {
        let by_hash = &mut self.by_hash;
        self.rows.retain(|_, t| {
            let keep = t.owner() != subject;
            if !keep {
                by_hash.remove(&t.hash());
            }
            keep
        });
    }
}
