//! A byte buffer whose window starts on an [`ALIGN`] boundary.

use crate::ALIGN;

/// A fixed-size, zero-initialised buffer aligned for `O_DIRECT`: a plain `Vec` over-allocated
/// by `ALIGN` bytes with the window starting at the first aligned address, so no unsafe
/// allocation code is needed.
pub struct AlignedBuf {
    raw: Vec<u8>,
    start: usize,
    len: usize,
}

impl AlignedBuf {
    /// A buffer of `len` bytes (rounded up to a multiple of `ALIGN`).
    pub fn new(len: usize) -> AlignedBuf {
        let len = len.div_ceil(ALIGN).max(1) * ALIGN;
        let raw = vec![0u8; len + ALIGN];
        // align_offset may decline (usize::MAX) in theory; an unaligned window only means
        // the direct path falls back to buffered I/O.
        let start = raw.as_ptr().align_offset(ALIGN).min(ALIGN);
        AlignedBuf { raw, start, len }
    }

    /// The window's length.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Never empty (the length is at least `ALIGN`).
    pub fn is_empty(&self) -> bool {
        false
    }

    pub fn as_slice(&self) -> &[u8] {
        &self.raw[self.start..self.start + self.len]
    }

    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        &mut self.raw[self.start..self.start + self.len]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_is_aligned_and_sized() {
        for n in [1, 4095, 4096, 1 << 20, (1 << 20) + 3] {
            let mut b = AlignedBuf::new(n);
            assert!(b.len() >= n && b.len().is_multiple_of(ALIGN));
            assert!((b.as_mut_slice().as_ptr() as usize).is_multiple_of(ALIGN));
        }
    }
}
