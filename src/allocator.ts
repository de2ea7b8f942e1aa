// Start-up tuning of the C allocator under the runtime, for large messages.

/** The block freed at start-up (see tuneAllocator): a 1 MiB message's allocations fit under it. */
export const RELEASED_BLOCK = 2 * 1024 * 1024;

/**
 * Frees one block of RELEASED_BLOCK bytes, at once, as the process starts. Under glibc (Linux),
 * a block from 128 KiB up gets a fresh mapping of its own, unmapped when freed, and the heap's
 * free top goes back to the system past twice that threshold; the threshold rises only to the
 * size of the largest such block freed. A 1 MiB request's body, which fetch encodes into a block
 * sized for more than it needs and then shrinks, exceeded it every time: each large request was
 * encoded into memory never touched, at a page fault every 4 KiB (2.5 ms per MiB on the
 * benchmark's machine), and the heap grown and trimmed by 2 MiB. With both thresholds raised
 * this way (as MALLOC_MMAP_THRESHOLD_ and MALLOC_TRIM_THRESHOLD_ would, which glibc reads only
 * before a program starts), such blocks come from memory used before. Elsewhere (macOS, Windows,
 * musl) it is one allocation, freed.
 */
export function tuneAllocator(): void {
  // transfer(0) detaches the buffer and frees its memory now, not at a later garbage collection.
  new ArrayBuffer(RELEASED_BLOCK).transfer(0);
}
