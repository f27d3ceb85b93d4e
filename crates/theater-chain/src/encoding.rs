//! The canonical byte encoding of events (`docs/chain-format.md`, "Event encoding").
//!
//! Every value has exactly one encoding: integers are fixed-width little endian, byte strings and
//! strings carry a `u32` length, options and booleans are one byte that must be 0 or 1, enums are
//! one tag byte from a closed set. Decoding is strict: any other byte, a length that overruns, or
//! bytes left over is an error. So `encode(decode(b)) == b` for every accepted `b` of the current
//! encoding version (an event of an older version re-encodes as the current one).
//!
//! Decoding never trusts a length: nothing is allocated or sliced by a length read from the
//! input before that many bytes are known to be there.

use crate::hash::Hash;

/// Why bytes were rejected, with the offset where decoding stopped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{what} at byte {offset}")]
pub struct DecodeError {
    pub offset: usize,
    pub what: String,
}

#[derive(Default)]
pub(crate) struct Writer {
    pub(crate) buf: Vec<u8>,
}

impl Writer {
    pub(crate) fn u8(&mut self, v: u8) {
        self.buf.push(v);
    }
    pub(crate) fn u32(&mut self, v: u32) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }
    pub(crate) fn u64(&mut self, v: u64) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }
    pub(crate) fn hash(&mut self, h: &Hash) {
        self.buf.extend_from_slice(&h.0);
    }
    pub(crate) fn bytes(&mut self, b: &[u8]) {
        let len = u32::try_from(b.len()).expect("chain fields are limited to 4 GiB");
        self.u32(len);
        self.buf.extend_from_slice(b);
    }
    pub(crate) fn str(&mut self, s: &str) {
        self.bytes(s.as_bytes());
    }
    pub(crate) fn opt<T>(&mut self, v: Option<&T>, f: impl FnOnce(&mut Self, &T))
    where
        T: ?Sized,
    {
        match v {
            None => self.u8(0),
            Some(v) => {
                self.u8(1);
                f(self, v);
            }
        }
    }
}

pub(crate) struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    /// Whether strings and byte strings are kept. A validating reader checks them as strictly
    /// but returns them empty, so that checking an event allocates nothing.
    keep: bool,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        Reader {
            buf,
            pos: 0,
            keep: true,
        }
    }

    /// A reader that checks everything [`Reader::new`]'s does, but returns every string and
    /// byte string empty.
    pub(crate) fn validating(buf: &'a [u8]) -> Self {
        Reader {
            keep: false,
            ..Reader::new(buf)
        }
    }

    pub(crate) fn error(&self, what: impl Into<String>) -> DecodeError {
        DecodeError {
            offset: self.pos,
            what: what.into(),
        }
    }

    pub(crate) fn remaining(&self) -> usize {
        self.buf.len().saturating_sub(self.pos)
    }

    /// The next `n` bytes. Checked before anything is sliced, so a length read from the input
    /// can never index past its end (nor overflow `pos + n`).
    pub(crate) fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8], DecodeError> {
        let Some(out) = self
            .pos
            .checked_add(n)
            .and_then(|end| self.buf.get(self.pos..end))
        else {
            return Err(self.error(format!(
                "{what}: needs {n} bytes but only {} remain",
                self.remaining()
            )));
        };
        self.pos += n;
        Ok(out)
    }

    /// The next `N` bytes as an array.
    pub(crate) fn array<const N: usize>(&mut self, what: &str) -> Result<[u8; N], DecodeError> {
        let bytes = self.take(N, what)?;
        let mut out = [0; N];
        out.copy_from_slice(bytes);
        Ok(out)
    }

    pub(crate) fn u8(&mut self, what: &str) -> Result<u8, DecodeError> {
        Ok(self.array::<1>(what)?[0])
    }
    pub(crate) fn u32(&mut self, what: &str) -> Result<u32, DecodeError> {
        Ok(u32::from_le_bytes(self.array(what)?))
    }
    pub(crate) fn u64(&mut self, what: &str) -> Result<u64, DecodeError> {
        Ok(u64::from_le_bytes(self.array(what)?))
    }
    pub(crate) fn hash(&mut self, what: &str) -> Result<Hash, DecodeError> {
        Ok(Hash(self.array(what)?))
    }
    /// A length-prefixed byte string. Nothing is allocated until the bytes are known to be
    /// there, so a corrupt length costs an error, not memory.
    pub(crate) fn bytes(&mut self, what: &str) -> Result<Vec<u8>, DecodeError> {
        let bytes = self.byte_slice(what)?;
        Ok(if self.keep {
            bytes.to_vec()
        } else {
            Vec::new()
        })
    }
    pub(crate) fn byte_slice(&mut self, what: &str) -> Result<&'a [u8], DecodeError> {
        let len = self.u32(what)?;
        let len = usize::try_from(len)
            .map_err(|_| self.error(format!("{what}: length {len} does not fit in memory")))?;
        self.take(len, what)
    }
    pub(crate) fn str(&mut self, what: &str) -> Result<String, DecodeError> {
        let start = self.pos;
        let bytes = self.byte_slice(what)?;
        let text = std::str::from_utf8(bytes).map_err(|_| DecodeError {
            offset: start,
            what: format!("{what}: not valid UTF-8"),
        })?;
        Ok(if self.keep {
            text.to_owned()
        } else {
            String::new()
        })
    }
    pub(crate) fn opt<T>(
        &mut self,
        what: &str,
        f: impl FnOnce(&mut Self) -> Result<T, DecodeError>,
    ) -> Result<Option<T>, DecodeError> {
        match self.u8(what)? {
            0 => Ok(None),
            1 => f(self).map(Some),
            tag => Err(DecodeError {
                offset: self.pos.saturating_sub(1),
                what: format!("{what}: option tag must be 0 or 1, found {tag}"),
            }),
        }
    }
    pub(crate) fn finish(&self, what: &str) -> Result<(), DecodeError> {
        if self.remaining() != 0 {
            return Err(self.error(format!(
                "{what}: {} unused bytes after the end",
                self.remaining()
            )));
        }
        Ok(())
    }
}
