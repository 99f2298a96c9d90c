//! The 128-bit key `dcount()` counts a value by ([`super::distinct_count`]).
//!
//! - A value of a fixed width up to 16 bytes (integers, datetimes, timespans, decimals) is its
//!   own key, zero-extended: exact.
//! - A real is its bits, with `-0.0` taken as `0.0` and every NaN as one NaN, as `==` sees them.
//! - A string or a binary is the XXH3-128 hash of its bytes, and any other value (booleans,
//!   dictionaries, dynamic arrays) the hash of its arrow row encoding. Two different values
//!   count once only when their 128-bit hashes collide: about n²/2^129 for n distinct values,
//!   10^-20 for a billion (ClickHouse's `uniqExact` counts strings the same way).

use arrow::array::{Array, ArrayRef, AsArray};
use arrow::datatypes::{DataType, Float32Type, Float64Type};
use arrow::row::{RowConverter, SortField};
use datafusion::common::Result;
use twox_hash::XxHash3_128;

/// A value's key: its 128 bits as two words, low first (8-byte aligned, so a (group, key) pair
/// takes 24 bytes).
pub(super) type Key = [u64; 2];

/// How the values of one argument type become keys.
#[derive(Debug)]
pub(super) enum KeyKind {
    Utf8,
    LargeUtf8,
    Utf8View,
    Binary,
    LargeBinary,
    BinaryView,
    Float32,
    Float64,
    /// Fixed-width values of this many bytes (at most 16), their bits the key.
    Fixed(usize),
    /// Anything else, by the hash of its row encoding.
    Rows(RowConverter),
}

impl KeyKind {
    pub(super) fn new(data_type: &DataType) -> Result<Self> {
        Ok(match data_type {
            DataType::Utf8 => Self::Utf8,
            DataType::LargeUtf8 => Self::LargeUtf8,
            DataType::Utf8View => Self::Utf8View,
            DataType::Binary => Self::Binary,
            DataType::LargeBinary => Self::LargeBinary,
            DataType::BinaryView => Self::BinaryView,
            DataType::Float32 => Self::Float32,
            DataType::Float64 => Self::Float64,
            other => match other.primitive_width() {
                Some(width) if width <= 16 && *other != DataType::Float16 => Self::Fixed(width),
                _ => Self::Rows(RowConverter::new(vec![SortField::new(data_type.clone())])?),
            },
        })
    }

    /// The key of each row of `values` into `keys` (any key for a null row).
    pub(super) fn keys(&self, values: &ArrayRef, keys: &mut Vec<Key>) -> Result<()> {
        keys.clear();
        match self {
            Self::Utf8 => hash_each(values.as_string::<i32>(), |a, i| a.value(i).as_bytes(), keys),
            Self::LargeUtf8 => hash_each(values.as_string::<i64>(), |a, i| a.value(i).as_bytes(), keys),
            Self::Utf8View => hash_each(values.as_string_view(), |a, i| a.value(i).as_bytes(), keys),
            Self::Binary => hash_each(values.as_binary::<i32>(), |a, i| a.value(i), keys),
            Self::LargeBinary => hash_each(values.as_binary::<i64>(), |a, i| a.value(i), keys),
            Self::BinaryView => hash_each(values.as_binary_view(), |a, i| a.value(i), keys),
            Self::Float32 => {
                keys.extend(values.as_primitive::<Float32Type>().values().iter().map(|v| real_key(f64::from(*v))))
            }
            Self::Float64 => keys.extend(values.as_primitive::<Float64Type>().values().iter().map(|v| real_key(*v))),
            Self::Fixed(width) => fixed_keys(values, *width, keys),
            Self::Rows(converter) => {
                let rows = converter.convert_columns(std::slice::from_ref(values))?;
                keys.extend(rows.iter().map(|row| split(XxHash3_128::oneshot(row.as_ref()))));
            }
        }
        debug_assert_eq!(keys.len(), values.len(), "one key per row");
        Ok(())
    }
}

/// The bits of each fixed-width value, zero-extended to 128.
fn fixed_keys(values: &ArrayRef, width: usize, keys: &mut Vec<Key>) {
    assert!((1..=16).contains(&width), "a fixed-width key fits in 16 bytes");
    let data = values.to_data();
    let start = data.offset() * width;
    let bytes = &data.buffers()[0].as_slice()[start..start + values.len() * width];
    keys.extend(bytes.chunks_exact(width).map(|value| {
        let mut padded = [0u8; 16];
        padded[..width].copy_from_slice(value);
        split(u128::from_le_bytes(padded))
    }));
}

/// A real's key: its bits, `-0.0` as `0.0` and every NaN as one (a `real` widened from 32 bits
/// keeps its value, so both widths share this).
fn real_key(value: f64) -> Key {
    let bits = if value == 0.0 {
        0
    } else if value.is_nan() {
        f64::NAN.to_bits()
    } else {
        value.to_bits()
    };
    [bits, 0]
}

/// The hash of each row's bytes (a null row's are whatever its slot holds), row by row over a
/// range, so `extend` knows the length.
fn hash_each<A: Array>(array: &A, bytes: impl Fn(&A, usize) -> &[u8], keys: &mut Vec<Key>) {
    keys.extend((0..array.len()).map(|row| split(XxHash3_128::oneshot(bytes(array, row)))));
}

fn split(bits: u128) -> Key {
    [bits as u64, (bits >> 64) as u64]
}

/// A key as the 16 bytes a `FixedSizeBinary(16)` state holds.
pub(super) fn key_bytes(key: Key) -> [u8; 16] {
    (u128::from(key[0]) | (u128::from(key[1]) << 64)).to_le_bytes()
}

/// A key from the 16 bytes of a state.
pub(super) fn key_from_bytes(bytes: &[u8]) -> Key {
    let bytes: [u8; 16] = bytes.try_into().expect("a state key is 16 bytes");
    split(u128::from_le_bytes(bytes))
}
