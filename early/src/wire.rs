//! The daemon's frame format and the two messages the early client speaks, in bincode 2's
//! standard encoding (variable-length integers, strings and sequences as a length and their
//! items, enums as a variant index). The main crate checks these bytes against its own
//! encoder (`daemon::early_client` tests), so the two cannot drift apart.

use crate::bytes;

/// Where encoded bytes go: counted first (to size the buffer), then written.
pub struct Sink<'a> {
    out: Option<&'a mut [u8]>,
    len: usize,
}

impl<'a> Sink<'a> {
    /// A sink that only counts.
    pub fn counting() -> Sink<'static> {
        Sink { out: None, len: 0 }
    }

    /// A sink writing into `out` (bytes past its end are counted, not written).
    pub fn into(out: &'a mut [u8]) -> Sink<'a> {
        Sink {
            out: Some(out),
            len: 0,
        }
    }

    /// Bytes put so far.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether nothing was put.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Appends raw bytes.
    pub fn bytes(&mut self, s: &[u8]) {
        if let Some(out) = self.out.as_deref_mut() {
            let room = out.len().saturating_sub(self.len).min(s.len());
            if let (Some(dst), Some(src)) = (out.get_mut(self.len..), s.get(..room)) {
                // SAFETY: `room` bytes fit in `dst`, a distinct buffer.
                unsafe { crate::bytes::copy(dst.as_mut_ptr(), src) };
            }
        }
        self.len += s.len();
    }

    /// An unsigned integer, variable-length: below 251 one byte, else a marker and 2, 4 or
    /// 8 little-endian bytes.
    pub fn varint(&mut self, n: u64) {
        if n < 251 {
            self.bytes(&[n as u8]);
        } else if n <= u64::from(u16::MAX) {
            self.bytes(&[251]);
            self.bytes(&(n as u16).to_le_bytes());
        } else if n <= u64::from(u32::MAX) {
            self.bytes(&[252]);
            self.bytes(&(n as u32).to_le_bytes());
        } else {
            self.bytes(&[253]);
            self.bytes(&n.to_le_bytes());
        }
    }

    /// A string (or byte string): its length, then its bytes.
    pub fn string(&mut self, s: &[u8]) {
        self.varint(s.len() as u64);
        self.bytes(s);
    }
}

/// The header of a frame: the body's length, the protocol, then the binary's version.
pub fn frame_header(sink: &mut Sink<'_>, payload_len: usize, protocol: u32, version: &str) {
    let body = 4 + 1 + version.len() + payload_len;
    sink.bytes(&(body as u32).to_le_bytes());
    sink.bytes(&protocol.to_le_bytes());
    sink.bytes(&[version.len() as u8]);
    sink.bytes(version.as_bytes());
}

/// A reader over a received payload; every read is bounds-checked.
pub struct Reader<'a> {
    s: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    /// Reads `s` from its start.
    pub fn new(s: &'a [u8]) -> Self {
        Reader { s, at: 0 }
    }

    /// Whether every byte was read.
    pub fn done(&self) -> bool {
        self.at == self.s.len()
    }

    /// The next `n` bytes.
    pub fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.at.checked_add(n)?;
        let part = self.s.get(self.at..end)?;
        self.at = end;
        Some(part)
    }

    /// A variable-length unsigned integer.
    pub fn varint(&mut self) -> Option<u64> {
        let little = |b: &[u8]| {
            let mut n = 0u64;
            let mut i = b.len();
            while i > 0 {
                i -= 1;
                n = (n << 8) | u64::from(b[i]);
            }
            n
        };
        match *self.take(1)?.first()? {
            n @ 0..=250 => Some(u64::from(n)),
            251 => self.take(2).map(little),
            252 => self.take(4).map(little),
            253 => self.take(8).map(little),
            _ => None,
        }
    }

    /// A zigzag-encoded `i32`.
    pub fn i32(&mut self) -> Option<i32> {
        let n = self.varint()?;
        let value = ((n >> 1) as i64) ^ -((n & 1) as i64);
        i32::try_from(value).ok()
    }

    /// A byte string.
    pub fn string(&mut self) -> Option<&'a [u8]> {
        let len = usize::try_from(self.varint()?).ok()?;
        self.take(len)
    }
}

/// A compile's answer: the compiler's status and what it printed.
pub struct Answer<'a> {
    /// The exit status.
    pub exit_code: i32,
    /// Its stdout.
    pub stdout: &'a [u8],
    /// Its stderr.
    pub stderr: &'a [u8],
}

/// What one frame from the daemon says.
pub enum Said<'a> {
    /// Still working on it: wait for the next frame.
    Working,
    /// The compile's answer.
    Answer(Answer<'a>),
}

/// The variant indexes and version a reply must carry.
pub struct ReplyKinds<'a> {
    /// The protocol version.
    pub protocol: u32,
    /// The binary's version.
    pub version: &'a str,
    /// `Response::Working`.
    pub working: u32,
    /// `Response::CompileResult`.
    pub result: u32,
}

/// Reads one frame's body (the bytes after its length): `None` for another version, another
/// message, or anything malformed.
pub fn read_reply<'a>(body: &'a [u8], kinds: &ReplyKinds<'_>) -> Option<Said<'a>> {
    let mut r = Reader::new(body);
    let protocol = r.take(4)?;
    if !bytes::eq(protocol, &kinds.protocol.to_le_bytes()) {
        return None;
    }
    let vlen = usize::from(*r.take(1)?.first()?);
    if !bytes::eq(r.take(vlen)?, kinds.version.as_bytes()) {
        return None;
    }
    let variant = r.varint()?;
    if variant == u64::from(kinds.working) {
        return r.done().then_some(Said::Working);
    }
    if variant != u64::from(kinds.result) {
        return None;
    }
    let exit_code = r.i32()?;
    let stdout = r.string()?;
    let stderr = r.string()?;
    let cached = *r.take(1)?.first()?;
    (cached <= 1 && r.done()).then_some(Said::Answer(Answer {
        exit_code,
        stdout,
        stderr,
    }))
}
