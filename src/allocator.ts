// Start-up tuning of the C allocator under the runtime, for large messages.

/**
 * The block freed at start-up (see tuneAllocator). fetch encodes a text body into a block of 1.2
 * times its length: a request of up to about 3 MiB then fits under it.
 */
export const RELEASED_BLOCK = 4 * 1024 * 1024;

/**
 * Frees one block of RELEASED_BLOCK bytes, at once, as the process starts. Under glibc (Linux),
 * a block from 128 KiB up gets a fresh mapping of its own, unmapped when freed, and the heap's
 * free top goes back to the system past twice that threshold; the threshold rises only to the
 * size of the largest such block freed. A large request's body, which fetch encodes into a block
 * sized for more than it needs and then shrinks, exceeded it every time: each large request was
 * encoded into memory never touched, at a page fault every 4 KiB (2.5 ms per MiB on the
 * benchmark's machine), or the heap grew and was trimmed by twice its size. With both thresholds
 * raised this way (as MALLOC_MMAP_THRESHOLD_ and MALLOC_TRIM_THRESHOLD_ would, which glibc reads
 * only before a program starts), such blocks come from memory used before: connect's process took
 * 1.06 instead of 2.05 fresh MiB per 1 MiB request, 2.04 instead of 4.05 per 2 MiB one (with a
 * 2 MiB block), and a third less CPU. Elsewhere (macOS, Windows, musl) it is one allocation, freed.
 */
export function tuneAllocator(): void {
  // transfer(0) detaches the buffer and frees its memory now, not at a later garbage collection.
  new ArrayBuffer(RELEASED_BLOCK).transfer(0);
}
