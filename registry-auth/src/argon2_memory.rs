//! argon2's working memory, allocated so that hashing a password leaves
//! nothing behind in the process's memory.
//!
//! A password check needs `m` KiB (7 MiB by default) for a few tens of
//! milliseconds. The argon2 crate allocates exactly that, which glibc's
//! malloc serves with `mmap` and returns with `munmap` — but freeing an
//! `mmap`ed block raises glibc's *dynamic* mmap threshold to the block's
//! size, and the trim threshold to twice that (mallopt(3), `M_MMAP_THRESHOLD`).
//! After the first login, every allocation below 7 MiB (request bodies,
//! upload batches, read buffers) then comes from malloc's arenas, which keep
//! up to 14 MiB of freed memory each instead of returning it: measured on
//! the example server under `benches/compare.sh`'s load, peak RSS 46 MiB
//! against 25–28 MiB with a fixed threshold (BENCHMARKS.md).
//!
//! glibc only follows blocks of at most 32 MiB (`DEFAULT_MMAP_THRESHOLD_MAX`
//! on 64-bit). So the memory is reserved as one larger block, of which
//! argon2 uses (and the kernel backs) only the first `m` KiB: the reservation
//! costs address space, not RAM, and freeing it moves no threshold. Other
//! allocators are unaffected either way.

use argon2::{Argon2, Block};

/// Blocks (1 KiB each) reserved per hash at least: above the largest
/// block glibc's dynamic threshold follows.
const RESERVED_BLOCKS: usize = 33 * 1024;

/// `argon2.hash_password_into`, with the working memory described above.
pub(crate) fn hash_into(
    argon2: &Argon2<'_>,
    password: &[u8],
    salt: &[u8],
    out: &mut [u8],
) -> Result<(), argon2::Error> {
    let blocks = argon2.params().block_count();
    let mut memory: Vec<Block> = Vec::new();
    memory
        .try_reserve_exact(blocks.max(RESERVED_BLOCKS))
        .map_err(|_| argon2::Error::OutOfMemory)?;
    memory.resize(blocks, Block::default());
    argon2.hash_password_into_with_memory(password, salt, out, &mut memory)
}
