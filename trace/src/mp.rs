//! The msgpack integer and array encodings of the hot records, written
//! straight into a `Vec` or a fixed stack buffer (the collector encodes
//! millions of records a second; `rmp`'s generic `Write`-based encoders cost
//! ~4× more per field there, and `Vec` growth checks another 5 % of the
//! collector's time).
//! Byte-for-byte what `rmp::encode::write_uint` / `write_sint` /
//! `write_array_len` produce (checked by the tests below).

/// Where encoded bytes go.
pub trait Put: Sized {
    fn push(&mut self, byte: u8);
    fn extend_from_slice(&mut self, bytes: &[u8]);
    /// [`uint`]; a sink may write it faster.
    #[inline]
    fn uint(&mut self, v: u64) {
        uint_bytewise(self, v)
    }
    /// [`sint`]; a sink may write it faster.
    #[inline]
    fn sint(&mut self, v: i64) {
        sint_bytewise(self, v)
    }
}

impl Put for Vec<u8> {
    #[inline(always)]
    fn push(&mut self, byte: u8) {
        Vec::push(self, byte)
    }
    #[inline(always)]
    fn extend_from_slice(&mut self, bytes: &[u8]) {
        Vec::extend_from_slice(self, bytes)
    }
}

/// One hot record being encoded: at most 16 fields of at most 9 bytes (and
/// room for an 8-byte store past the last one).
pub struct Fixed {
    buf: [u8; 168],
    len: usize,
}

impl Fixed {
    pub fn new() -> Self {
        Fixed { buf: [0; 168], len: 0 }
    }

    /// A marker and the low `n` bytes of `v`, big-endian, with one 8-byte store
    /// instead of a byte at a time: the collector encodes ≈ 8 integers per event.
    #[inline(always)]
    fn marked(&mut self, marker: u8, n: usize, v: u64) {
        let at = self.len;
        self.buf[at] = marker;
        self.buf[at + 1..at + 9].copy_from_slice(&(v << (64 - 8 * n)).to_be_bytes());
        self.len = at + 1 + n;
    }
    pub fn clear(&mut self) {
        self.len = 0;
    }
    pub fn as_slice(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

impl Put for Fixed {
    #[inline(always)]
    fn push(&mut self, byte: u8) {
        self.buf[self.len] = byte;
        self.len += 1;
    }
    #[inline(always)]
    fn extend_from_slice(&mut self, bytes: &[u8]) {
        self.buf[self.len..self.len + bytes.len()].copy_from_slice(bytes);
        self.len += bytes.len();
    }
    #[inline(always)]
    fn uint(&mut self, v: u64) {
        match v {
            0..=0x7f => self.push(v as u8),
            0x80..=0xff => self.marked(0xcc, 1, v),
            0x100..=0xffff => self.marked(0xcd, 2, v),
            0x1_0000..=0xffff_ffff => self.marked(0xce, 4, v),
            _ => self.marked(0xcf, 8, v),
        }
    }
    #[inline(always)]
    fn sint(&mut self, v: i64) {
        match v {
            -32..=0x7f => self.push(v as u8),
            0x80.. => self.uint(v as u64),
            -0x80..=-33 => self.marked(0xd0, 1, v as u64),
            -0x8000..=-0x81 => self.marked(0xd1, 2, v as u64),
            -0x8000_0000..=-0x8001 => self.marked(0xd2, 4, v as u64),
            _ => self.marked(0xd3, 8, v as u64),
        }
    }
}

/// A msgpack unsigned integer in the fewest bytes.
#[inline]
pub fn uint<P: Put>(b: &mut P, v: u64) {
    b.uint(v)
}

/// A msgpack signed integer in the fewest bytes (non-negative ones as unsigned).
#[inline]
pub fn sint<P: Put>(b: &mut P, v: i64) {
    b.sint(v)
}

#[inline]
fn uint_bytewise<P: Put>(b: &mut P, v: u64) {
    if v < 128 {
        b.push(v as u8);
    } else if v <= u8::MAX as u64 {
        b.extend_from_slice(&[0xcc, v as u8]);
    } else if v <= u16::MAX as u64 {
        b.push(0xcd);
        b.extend_from_slice(&(v as u16).to_be_bytes());
    } else if v <= u32::MAX as u64 {
        b.push(0xce);
        b.extend_from_slice(&(v as u32).to_be_bytes());
    } else {
        b.push(0xcf);
        b.extend_from_slice(&v.to_be_bytes());
    }
}

#[inline]
fn sint_bytewise<P: Put>(b: &mut P, v: i64) {
    if v >= 0 {
        uint_bytewise(b, v as u64);
    } else if v >= -32 {
        b.push(v as i8 as u8);
    } else if v >= i8::MIN as i64 {
        b.extend_from_slice(&[0xd0, v as i8 as u8]);
    } else if v >= i16::MIN as i64 {
        b.push(0xd1);
        b.extend_from_slice(&(v as i16).to_be_bytes());
    } else if v >= i32::MIN as i64 {
        b.push(0xd2);
        b.extend_from_slice(&(v as i32).to_be_bytes());
    } else {
        b.push(0xd3);
        b.extend_from_slice(&v.to_be_bytes());
    }
}

#[inline]
pub fn array_len<P: Put>(b: &mut P, n: u32) {
    if n < 16 {
        b.push(0x90 | n as u8);
    } else if n <= u16::MAX as u32 {
        b.push(0xdc);
        b.extend_from_slice(&(n as u16).to_be_bytes());
    } else {
        b.push(0xdd);
        b.extend_from_slice(&n.to_be_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn edges() -> Vec<i64> {
        let mut v = vec![0, 1, -1, i64::MIN, i64::MAX];
        for bits in [5u32, 7, 8, 15, 16, 31, 32, 63] {
            // 1 << 63 is i64::MIN: wrap rather than overflow (debug builds panic).
            let p = 1i64 << bits;
            let n = p.wrapping_neg();
            v.extend([p.wrapping_sub(1), p, p.wrapping_add(1), n, n.wrapping_sub(1), n.wrapping_add(1)]);
        }
        v
    }

    #[test]
    fn same_bytes_as_rmp() {
        for v in edges() {
            let (mut a, mut b) = (Vec::new(), Vec::new());
            sint(&mut a, v);
            rmp::encode::write_sint(&mut b, v).unwrap();
            assert_eq!(a, b, "sint {v}");
            let u = v as u64;
            let (mut a, mut b) = (Vec::new(), Vec::new());
            uint(&mut a, u);
            rmp::encode::write_uint(&mut b, u).unwrap();
            assert_eq!(a, b, "uint {u}");
            let (mut f, mut want) = (Fixed::new(), Vec::new());
            uint(&mut f, u);
            sint(&mut f, v);
            uint(&mut want, u);
            sint(&mut want, v);
            assert_eq!(f.as_slice(), &want[..], "fixed {v}");
        }
        for n in [0u32, 5, 15, 16, 65_535, 65_536] {
            let (mut a, mut b) = (Vec::new(), Vec::new());
            array_len(&mut a, n);
            rmp::encode::write_array_len(&mut b, n).unwrap();
            assert_eq!(a, b, "array {n}");
        }
    }
}
