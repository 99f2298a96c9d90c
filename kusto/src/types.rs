//! The Kusto scalar types and their Arrow representation.

use std::fmt;

use arrow::datatypes::{DataType, Field, TimeUnit};

/// Arrow field metadata key that records a column's Kusto type (`dynamic` and `guid` are both
/// held as Utf8, so the Arrow type alone does not say which one a column is).
pub const KUSTO_TYPE_KEY: &str = "kusto.type";

/// The Kusto scalar types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "lowercase"))]
pub enum KustoType {
    String,
    DateTime,
    Long,
    Int,
    Real,
    Bool,
    Guid,
    Dynamic,
    Timespan,
}

impl KustoType {
    pub const ALL: [KustoType; 9] = [
        KustoType::String,
        KustoType::DateTime,
        KustoType::Long,
        KustoType::Int,
        KustoType::Real,
        KustoType::Bool,
        KustoType::Guid,
        KustoType::Dynamic,
        KustoType::Timespan,
    ];

    /// The Kusto name, as the Log Analytics Query API spells it in column metadata.
    pub fn name(self) -> &'static str {
        match self {
            KustoType::String => "string",
            KustoType::DateTime => "datetime",
            KustoType::Long => "long",
            KustoType::Int => "int",
            KustoType::Real => "real",
            KustoType::Bool => "bool",
            KustoType::Guid => "guid",
            KustoType::Dynamic => "dynamic",
            KustoType::Timespan => "timespan",
        }
    }

    /// The type a name denotes, with Kusto's synonyms (`date`, `time`, `double`, `boolean`,
    /// `uuid`, `uniqueid`; `decimal` is held as `real`). `None` for any other word.
    pub fn from_name(name: &str) -> Option<KustoType> {
        Some(match name {
            "string" => KustoType::String,
            "datetime" | "date" => KustoType::DateTime,
            "long" => KustoType::Long,
            "int" => KustoType::Int,
            "real" | "double" | "decimal" => KustoType::Real,
            "bool" | "boolean" => KustoType::Bool,
            "guid" | "uuid" | "uniqueid" => KustoType::Guid,
            "dynamic" => KustoType::Dynamic,
            "timespan" | "time" => KustoType::Timespan,
            _ => return None,
        })
    }

    /// The Arrow type a value of this Kusto type is held in.
    pub fn arrow_type(self) -> DataType {
        match self {
            KustoType::String | KustoType::Guid | KustoType::Dynamic => DataType::Utf8,
            KustoType::DateTime => timestamp_type(),
            KustoType::Long => DataType::Int64,
            KustoType::Int => DataType::Int32,
            KustoType::Real => DataType::Float64,
            KustoType::Bool => DataType::Boolean,
            KustoType::Timespan => DataType::Duration(TimeUnit::Nanosecond),
        }
    }

    /// The Kusto type of an Arrow type; `None` for one Kusto has no name for (lists, structs,
    /// binary, the null type). Utf8 is `string`: only a field's metadata says `guid` or `dynamic`.
    pub fn of_arrow(data_type: &DataType) -> Option<KustoType> {
        Some(match data_type {
            DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => KustoType::String,
            DataType::Timestamp(..) => KustoType::DateTime,
            DataType::Duration(_) => KustoType::Timespan,
            DataType::Int64 | DataType::UInt64 | DataType::UInt32 => KustoType::Long,
            DataType::Int32 | DataType::Int16 | DataType::Int8 | DataType::UInt16 | DataType::UInt8 => KustoType::Int,
            DataType::Float64 | DataType::Float32 => KustoType::Real,
            DataType::Boolean => KustoType::Bool,
            _ => return None,
        })
    }

    /// The Kusto type of a column: its `kusto.type` metadata when present, else its Arrow type's,
    /// else `string` (a value of any other Arrow type is shown as text).
    pub fn of_field(field: &Field) -> KustoType {
        let named = field.metadata().get(KUSTO_TYPE_KEY).and_then(|name| KustoType::from_name(name));
        named.or_else(|| KustoType::of_arrow(field.data_type())).unwrap_or(KustoType::String)
    }

    /// A nullable Arrow field of this type, with the metadata that keeps the Kusto type.
    pub fn field(self, name: &str) -> Field {
        let metadata = [(KUSTO_TYPE_KEY.to_string(), self.name().to_string())].into_iter().collect();
        Field::new(name, self.arrow_type(), true).with_metadata(metadata)
    }

    /// Whether values of this type are numbers (`long`, `int`, `real`).
    pub fn is_numeric(self) -> bool {
        matches!(self, KustoType::Long | KustoType::Int | KustoType::Real)
    }
}

impl fmt::Display for KustoType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The Arrow type of every `datetime`: microseconds since the epoch, UTC. Microseconds are what
/// Delta Lake's `timestamp` type holds, so other engines read the columns unchanged.
pub fn timestamp_type() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_synonyms_resolve() {
        for t in KustoType::ALL {
            assert_eq!(KustoType::from_name(t.name()), Some(t));
        }
        assert_eq!(KustoType::from_name("double"), Some(KustoType::Real));
        assert_eq!(KustoType::from_name("time"), Some(KustoType::Timespan));
        assert_eq!(KustoType::from_name("String"), None, "type names are case-sensitive");
    }

    #[test]
    fn fields_keep_the_kusto_type_that_arrow_cannot_tell() {
        for t in KustoType::ALL {
            assert_eq!(KustoType::of_field(&t.field("c")), t);
        }
        assert_eq!(KustoType::of_field(&Field::new("c", DataType::Utf8, true)), KustoType::String);
        assert_eq!(KustoType::of_field(&Field::new("c", DataType::UInt8, true)), KustoType::Int);
        assert_eq!(KustoType::of_arrow(&DataType::Null), None);
    }
}
