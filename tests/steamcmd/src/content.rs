//! File contents in the fake depot and the hash its manifests carry.
//!
//! Large trees are not stored: a [`Content::Generated`] file is a seed and a length, and its
//! bytes are a deterministic xorshift64* stream the server produces while it sends them. The
//! hash is FNV-1a 64 over little-endian 64-bit words, then the tail bytes, then the length —
//! `src/steamcmd.c` computes the same.

const PRIME: u64 = 0x0000_0100_0000_01b3;
const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;

/// What a depot file holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Content {
    /// These bytes (stored in the depot's `blobs/`).
    Bytes(Vec<u8>),
    /// `len` bytes of the stream seeded by `seed` (nothing stored).
    Generated { seed: u64, len: u64 },
}

impl Content {
    /// The size in bytes.
    pub fn len(&self) -> u64 {
        match self {
            Content::Bytes(bytes) => bytes.len() as u64,
            Content::Generated { len, .. } => *len,
        }
    }

    /// Whether the file is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The content hash (see the module docs).
    pub fn hash(&self) -> u64 {
        let mut hasher = Hasher::new();
        self.for_each_chunk(|chunk| {
            hasher.feed(chunk);
            Ok(())
        })
        .expect("hashing cannot fail");
        hasher.finish()
    }

    /// Calls `sink` with the content in order, in chunks of at most 64 KiB.
    pub fn for_each_chunk(
        &self,
        mut sink: impl FnMut(&[u8]) -> std::io::Result<()>,
    ) -> std::io::Result<()> {
        match self {
            Content::Bytes(bytes) => bytes.chunks(65536).try_for_each(sink),
            Content::Generated { seed, len } => {
                let mut stream = Stream::new(*seed);
                let mut buf = vec![0u8; 65536];
                let mut left = *len;
                while left > 0 {
                    let n = left.min(buf.len() as u64) as usize;
                    stream.fill(&mut buf[..n]);
                    sink(&buf[..n])?;
                    left -= n as u64;
                }
                Ok(())
            }
        }
    }
}

/// The deterministic byte stream of [`Content::Generated`].
struct Stream {
    state: u64,
}

impl Stream {
    fn new(seed: u64) -> Self {
        Self {
            state: seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1,
        }
    }

    fn next(&mut self) -> u64 {
        let mut x = self.state;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.state = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Fills `buf`; called with chunk sizes that are multiples of 8 except the last.
    fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            let word = self.next().to_le_bytes();
            chunk.copy_from_slice(&word[..chunk.len()]);
        }
    }
}

/// The streaming content hash.
#[derive(Debug)]
pub struct Hasher {
    h: u64,
    tail: Vec<u8>,
    len: u64,
}

impl Default for Hasher {
    fn default() -> Self {
        Self::new()
    }
}

impl Hasher {
    /// A hasher over no bytes yet.
    pub fn new() -> Self {
        Self {
            h: OFFSET,
            tail: Vec::with_capacity(8),
            len: 0,
        }
    }

    /// Adds bytes.
    pub fn feed(&mut self, mut bytes: &[u8]) {
        self.len += bytes.len() as u64;
        while !bytes.is_empty() && !self.tail.is_empty() {
            self.tail.push(bytes[0]);
            bytes = &bytes[1..];
            if self.tail.len() == 8 {
                let word = u64::from_le_bytes(self.tail[..].try_into().expect("8 bytes"));
                self.h = (self.h ^ word).wrapping_mul(PRIME);
                self.tail.clear();
            }
        }
        let mut words = bytes.chunks_exact(8);
        for word in &mut words {
            let word = u64::from_le_bytes(word.try_into().expect("8 bytes"));
            self.h = (self.h ^ word).wrapping_mul(PRIME);
        }
        self.tail.extend_from_slice(words.remainder());
    }

    /// The hash of everything fed.
    pub fn finish(&self) -> u64 {
        let mut h = self.h;
        for &b in &self.tail {
            h = (h ^ u64::from(b)).wrapping_mul(PRIME);
        }
        (h ^ self.len).wrapping_mul(PRIME)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hash_does_not_depend_on_how_bytes_are_fed() {
        let bytes: Vec<u8> = (0..1000u32).map(|i| (i * 7) as u8).collect();
        let mut whole = Hasher::new();
        whole.feed(&bytes);
        let mut pieces = Hasher::new();
        for piece in bytes.chunks(3) {
            pieces.feed(piece);
        }
        assert_eq!(whole.finish(), pieces.finish());
        assert_ne!(
            Content::Bytes(b"a".to_vec()).hash(),
            Content::Bytes(b"a\0".to_vec()).hash()
        );
    }

    #[test]
    fn generated_content_is_deterministic_and_seed_dependent() {
        let a = Content::Generated {
            seed: 1,
            len: 100_003,
        };
        assert_eq!(a.hash(), a.clone().hash());
        assert_ne!(
            a.hash(),
            Content::Generated {
                seed: 2,
                len: 100_003
            }
            .hash()
        );
    }
}
