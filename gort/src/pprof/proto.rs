//! A minimal protocol-buffer writer: the few wire forms profile.proto
//! uses (varint scalars, length-delimited strings and messages, packed
//! repeated integers), after Go's runtime/pprof `protobuf` type.
//!
//! Scalars equal to zero are left out, as proto3 encoders do: a reader
//! takes an absent field as zero, and Go's encoder saves the bytes the
//! same way. Nested messages are written into their own buffer and copied
//! in with their length, which keeps the writer free of back-patching;
//! profiles are small enough for the copy not to matter.

/// Field numbers of profile.proto (github.com/google/pprof), one module a
/// message, shared by the encoder and the test decoder.
pub(crate) mod tag {
    /// `Profile`.
    pub(crate) mod profile {
        pub(crate) const SAMPLE_TYPE: u32 = 1;
        pub(crate) const SAMPLE: u32 = 2;
        pub(crate) const MAPPING: u32 = 3;
        pub(crate) const LOCATION: u32 = 4;
        pub(crate) const FUNCTION: u32 = 5;
        pub(crate) const STRING_TABLE: u32 = 6;
        pub(crate) const TIME_NANOS: u32 = 9;
        pub(crate) const DURATION_NANOS: u32 = 10;
        pub(crate) const PERIOD_TYPE: u32 = 11;
        pub(crate) const PERIOD: u32 = 12;
        pub(crate) const COMMENT: u32 = 13;
        pub(crate) const DEFAULT_SAMPLE_TYPE: u32 = 14;
    }
    /// `ValueType`.
    pub(crate) mod value_type {
        pub(crate) const TYPE: u32 = 1;
        pub(crate) const UNIT: u32 = 2;
    }
    /// `Sample`.
    pub(crate) mod sample {
        pub(crate) const LOCATION_ID: u32 = 1;
        pub(crate) const VALUE: u32 = 2;
        pub(crate) const LABEL: u32 = 3;
    }
    /// `Label`.
    pub(crate) mod label {
        pub(crate) const KEY: u32 = 1;
        pub(crate) const STR: u32 = 2;
        pub(crate) const NUM: u32 = 3;
        pub(crate) const NUM_UNIT: u32 = 4;
    }
    /// `Mapping`.
    pub(crate) mod mapping {
        pub(crate) const ID: u32 = 1;
        pub(crate) const MEMORY_START: u32 = 2;
        pub(crate) const MEMORY_LIMIT: u32 = 3;
        pub(crate) const FILE_OFFSET: u32 = 4;
        pub(crate) const FILENAME: u32 = 5;
        pub(crate) const HAS_FUNCTIONS: u32 = 7;
        pub(crate) const HAS_FILENAMES: u32 = 8;
        pub(crate) const HAS_LINE_NUMBERS: u32 = 9;
        pub(crate) const HAS_INLINE_FRAMES: u32 = 10;
    }
    /// `Location`.
    pub(crate) mod location {
        pub(crate) const ID: u32 = 1;
        pub(crate) const MAPPING_ID: u32 = 2;
        pub(crate) const ADDRESS: u32 = 3;
        pub(crate) const LINE: u32 = 4;
    }
    /// `Line`.
    pub(crate) mod line {
        pub(crate) const FUNCTION_ID: u32 = 1;
        pub(crate) const LINE: u32 = 2;
    }
    /// `Function`.
    pub(crate) mod function {
        pub(crate) const ID: u32 = 1;
        pub(crate) const NAME: u32 = 2;
        pub(crate) const SYSTEM_NAME: u32 = 3;
        pub(crate) const FILENAME: u32 = 4;
    }
}

/// Wire type of varint fields.
pub(crate) const VARINT: u64 = 0;
/// Wire type of length-delimited fields (strings, messages, packed lists).
pub(crate) const LEN: u64 = 2;

/// A growing encoded message.
#[derive(Default)]
pub(crate) struct Writer {
    buf: Vec<u8>,
}

impl Writer {
    /// The encoded bytes.
    pub(crate) fn finish(self) -> Vec<u8> {
        self.buf
    }

    fn varint(&mut self, mut x: u64) {
        while x >= 0x80 {
            self.buf.push(x as u8 | 0x80);
            x >>= 7;
        }
        self.buf.push(x as u8);
    }

    fn key(&mut self, field: u32, wire: u64) {
        self.varint(u64::from(field) << 3 | wire);
    }

    /// A `uint64` field, left out when zero.
    pub(crate) fn uint64(&mut self, field: u32, x: u64) {
        if x != 0 {
            self.key(field, VARINT);
            self.varint(x);
        }
    }

    /// An `int64` field, left out when zero. Negative values take ten
    /// bytes (two's complement), as protobuf's `int64` defines.
    pub(crate) fn int64(&mut self, field: u32, x: i64) {
        self.uint64(field, x as u64);
    }

    /// A `bool` field, left out when false.
    pub(crate) fn bool(&mut self, field: u32, x: bool) {
        self.uint64(field, u64::from(x));
    }

    /// A length-delimited field, written even when empty (a repeated
    /// string or message must keep its place: string 0 is "").
    pub(crate) fn bytes(&mut self, field: u32, b: &[u8]) {
        self.key(field, LEN);
        self.varint(b.len() as u64);
        self.buf.extend_from_slice(b);
    }

    /// An embedded message, built by `f` into a writer of its own.
    pub(crate) fn message(&mut self, field: u32, f: impl FnOnce(&mut Writer)) {
        let mut m = Writer::default();
        f(&mut m);
        self.bytes(field, &m.buf);
    }

    /// A packed repeated integer field (`repeated uint64`/`int64`), left
    /// out when empty.
    pub(crate) fn packed(&mut self, field: u32, xs: impl IntoIterator<Item = u64>) {
        let mut m = Writer::default();
        xs.into_iter().for_each(|x| m.varint(x));
        if !m.buf.is_empty() {
            self.bytes(field, &m.buf);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Writer;

    #[test]
    fn varints_and_zero_fields() {
        let mut w = Writer::default();
        w.uint64(1, 0);
        w.uint64(1, 300);
        w.int64(2, -1);
        w.packed(3, []);
        w.packed(3, [1, 150]);
        let mut want = vec![0x08, 0xac, 0x02, 0x10];
        want.extend([0xff; 9]);
        want.extend([0x01, 0x1a, 0x03, 0x01, 0x96, 0x01]);
        assert_eq!(w.finish(), want);
    }
}
