//! JSON records to an Arrow batch in a table's schema, validating every field on the way.
//!
//! The body is streamed through serde straight into Arrow builders (no `serde_json::Value`
//! tree). A JSON array and NDJSON (one object per line) are both accepted. The first problem
//! rejects the whole body: [`DecodeError`] names the record, the field, what was expected, what
//! came, and the line and column.

use std::collections::BTreeSet;
use std::fmt;
use std::sync::Arc;

use arrow::array::{ArrayRef, RecordBatch};
use chrono::{DateTime, Utc};
use fimlake_storage::schema::{
    ADDITIONAL_FIELDS_COLUMN, ITEM_ID_COLUMN, Origin, TENANT_ID_COLUMN, TIME_COLUMN, TIME_RECEIVED_COLUMN, TYPE_COLUMN,
};
use fimlake_storage::{KustoType, TableDef};
use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;

use crate::sizing::Sizing;

mod columns;
mod item_id;
use columns::Col;
use item_id::ItemIds;

/// Server-side values for the columns the server sets.
#[derive(Debug, Clone)]
pub struct DecodeContext {
    pub received: DateTime<Utc>,
    /// Filled into `TenantId` when a record has none.
    pub tenant_id: String,
    /// The most records one body may hold.
    pub max_records: usize,
    /// How large the table's last body decoded, to size this one's columns by; `None` sizes
    /// nothing ahead (the builders grow as they fill).
    pub sizing: Option<Arc<Sizing>>,
}

/// A decoded body.
#[derive(Debug)]
pub struct Decoded {
    pub batch: RecordBatch,
    /// Field names the table does not define; their values are in `AdditionalFields`.
    pub additional_fields: BTreeSet<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecodeErrorKind {
    /// Not JSON, or JSON of the wrong shape (not an array of objects / object per line).
    Syntax,
    /// A field whose value has the wrong type or an invalid value.
    Field,
    /// More records than allowed.
    TooManyRecords,
    /// The body holds no record.
    Empty,
}

/// Why a body was rejected. `Display` gives the full sentence for the client.
#[derive(Debug, Clone)]
pub struct DecodeError {
    pub kind: DecodeErrorKind,
    /// Zero-based index of the record at fault.
    pub record: Option<usize>,
    pub field: Option<String>,
    pub line: usize,
    pub column: usize,
    pub detail: String,
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind {
            DecodeErrorKind::Syntax => write!(f, "invalid JSON")?,
            DecodeErrorKind::Field => write!(f, "invalid record")?,
            DecodeErrorKind::TooManyRecords | DecodeErrorKind::Empty => return f.write_str(&self.detail),
        }
        if let Some(r) = self.record {
            write!(f, " at index {r}")?;
        }
        if let Some(field) = &self.field {
            write!(f, ", field '{field}'")?;
        }
        write!(f, ": {}", self.detail)?;
        if self.line > 0 {
            write!(f, " (line {}, column {})", self.line, self.column)?;
        }
        Ok(())
    }
}

impl std::error::Error for DecodeError {}

/// Decodes a JSON array or NDJSON body of records for `def`.
pub fn decode(def: &TableDef, body: &[u8], ctx: &DecodeContext) -> Result<Decoded, DecodeError> {
    let mut state = State::new(def, ctx, body.len());
    let first = body.iter().position(|b| !b.is_ascii_whitespace());
    let result = match first.map(|i| body[i]) {
        None => Err(state.fail(DecodeErrorKind::Empty, 0, 0, "the body holds no record".into())),
        Some(b'[') => {
            let mut de = serde_json::Deserializer::from_slice(body);
            let r = (&mut de).deserialize_seq(RecordsSeed { state: &mut state }).and_then(|()| de.end());
            r.map_err(|e| state.json_error(e, 0))
        }
        Some(_) => decode_ndjson(&mut state, body),
    };
    result?;
    if state.records == 0 {
        return Err(state.fail(DecodeErrorKind::Empty, 0, 0, "the body holds no record".into()));
    }
    Ok(state.finish(body.len()))
}

fn decode_ndjson(state: &mut State<'_>, body: &[u8]) -> Result<(), DecodeError> {
    for (n, line) in body.split(|b| *b == b'\n').enumerate() {
        if line.iter().all(|b| b.is_ascii_whitespace()) {
            continue;
        }
        let mut de = serde_json::Deserializer::from_slice(line);
        let r = RecordSeed { state: &mut *state }.deserialize(&mut de).and_then(|()| de.end());
        r.map_err(|e| state.json_error(e, n))?;
    }
    Ok(())
}

/// The field being decoded (for error messages): a column, or a field the table does not have.
enum Field {
    None,
    Column(usize),
    Other(String),
}

/// What the server puts in a column a record has no value for (other columns get null).
#[derive(Debug)]
enum Fill {
    /// `_TimeReceived`, and `TimeGenerated` when the record has none.
    Received,
    TableName,
    Tenant,
    ItemId,
    Additional,
}

struct State<'a> {
    def: &'a TableDef,
    ctx: &'a DecodeContext,
    cols: Vec<Col>,
    /// Per column: the record number that last set it (to detect absent and duplicate fields).
    set_in: Vec<usize>,
    records: usize,
    /// The field being decoded, for error messages.
    field: Field,
    /// The columns the server fills in a record that has no value for them, and with what.
    /// Every other column absent from a record is null: its nulls are appended when it next gets
    /// a value ([`State::column`]) or when the batch is finished, not once per record.
    fills: Vec<(usize, Fill)>,
    /// Column indexes of the previous record's fields, in its order, and of the current one's:
    /// records of one body mostly have the same fields in the same order, so a key is first
    /// compared with the column at its position in the previous record (no hashing).
    prev_order: Vec<usize>,
    order: Vec<usize>,
    /// Whether decoding is inside a record (so an error can name it).
    in_record: bool,
    additional: BTreeSet<String>,
    /// Unknown fields of the current record, as (name, raw JSON).
    extra: Vec<(String, String)>,
    /// `AdditionalFields` sent by the record itself.
    own_additional: Option<String>,
    received_us: i64,
    /// The body's `_ItemId`s.
    ids: ItemIds,
    time_idx: usize,
    tenant_idx: usize,
    additional_idx: usize,
}

impl<'a> State<'a> {
    fn new(def: &'a TableDef, ctx: &'a DecodeContext, body_len: usize) -> Self {
        let records = ctx.sizing.as_ref().map_or(0, |sizing| sizing.records(body_len).min(ctx.max_records));
        let bytes = |index: usize| ctx.sizing.as_ref().map_or(0, |sizing| sizing.bytes(index, body_len, records));
        let cols = def.columns().iter().enumerate().map(|(i, c)| Col::with_capacity(c.ty, records, bytes(i))).collect();
        let idx = |name: &str| def.column_index(name).expect("every table has the standard columns");
        State {
            def,
            ctx,
            cols,
            set_in: vec![usize::MAX; def.columns().len()],
            records: 0,
            field: Field::None,
            fills: def
                .columns()
                .iter()
                .enumerate()
                .filter_map(|(i, c)| {
                    let fill = match c.name.as_str() {
                        TIME_COLUMN | TIME_RECEIVED_COLUMN => Fill::Received,
                        TYPE_COLUMN => Fill::TableName,
                        TENANT_ID_COLUMN => Fill::Tenant,
                        ITEM_ID_COLUMN => Fill::ItemId,
                        ADDITIONAL_FIELDS_COLUMN => Fill::Additional,
                        _ => return None,
                    };
                    Some((i, fill))
                })
                .collect(),
            prev_order: Vec::new(),
            order: Vec::new(),
            in_record: false,
            additional: BTreeSet::new(),
            extra: Vec::new(),
            own_additional: None,
            received_us: ctx.received.timestamp_micros(),
            ids: ItemIds::default(),
            time_idx: idx(TIME_COLUMN),
            tenant_idx: idx(TENANT_ID_COLUMN),
            additional_idx: idx(ADDITIONAL_FIELDS_COLUMN),
        }
    }

    fn fail(&self, kind: DecodeErrorKind, line: usize, column: usize, detail: String) -> DecodeError {
        DecodeError {
            kind,
            record: (kind == DecodeErrorKind::Field || self.in_record).then_some(self.records),
            field: if kind == DecodeErrorKind::Field { self.field_name() } else { None },
            line,
            column,
            detail,
        }
    }

    /// Turns a serde_json error into a [`DecodeError`]; `line_offset` is the NDJSON line index.
    fn json_error(&self, e: serde_json::Error, line_offset: usize) -> DecodeError {
        let msg = e.to_string();
        let suffix = format!(" at line {} column {}", e.line(), e.column());
        let detail = msg.strip_suffix(&suffix).unwrap_or(&msg).to_string();
        if let Some(limit) = detail.strip_prefix(TOO_MANY) {
            return DecodeError {
                kind: DecodeErrorKind::TooManyRecords,
                record: None,
                field: None,
                line: 0,
                column: 0,
                detail: format!("the body holds more than {limit} records"),
            };
        }
        let kind = if e.is_data() && !matches!(self.field, Field::None) {
            DecodeErrorKind::Field
        } else {
            DecodeErrorKind::Syntax
        };
        let mut err = self.fail(kind, e.line() + line_offset, e.column(), detail);
        if kind == DecodeErrorKind::Syntax && e.is_data() {
            err.field = None;
        }
        err
    }

    fn begin_record(&mut self) -> Result<(), String> {
        if self.records >= self.ctx.max_records {
            return Err(format!("{TOO_MANY}{}", self.ctx.max_records));
        }
        self.extra.clear();
        self.own_additional = None;
        self.in_record = true;
        std::mem::swap(&mut self.prev_order, &mut self.order);
        self.order.clear();
        Ok(())
    }

    fn field_name(&self) -> Option<String> {
        match &self.field {
            Field::None => None,
            Field::Column(i) => Some(self.def.columns()[*i].name.clone()),
            Field::Other(name) => Some(name.clone()),
        }
    }

    /// The column of the record's next key, if the table has it.
    fn lookup(&mut self, name: &str) -> Option<usize> {
        let predicted = self.prev_order.get(self.order.len()).copied();
        let i = match predicted {
            Some(i) if i != usize::MAX && self.def.columns()[i].name == name => Some(i),
            _ => self.def.column_index(name),
        };
        self.order.push(i.unwrap_or(usize::MAX));
        i
    }

    /// Claims column `i` for the current record; a second value for it is an error.
    fn claim(&mut self, i: usize) -> Result<(), String> {
        if self.set_in[i] == self.records {
            return Err("the field appears twice in the record".into());
        }
        self.set_in[i] = self.records;
        Ok(())
    }

    /// Column `i`, ready for the current record's value: the nulls of the records before it
    /// that had none are appended first.
    fn column(&mut self, i: usize) -> &mut Col {
        let col = &mut self.cols[i];
        col.fill_nulls_to(self.records);
        col
    }

    fn end_record(&mut self) -> Result<(), String> {
        let r = self.records;
        let additional = self.additional_json()?;
        for (i, fill) in &self.fills {
            if self.set_in[*i] == r {
                continue;
            }
            let col = &mut self.cols[*i];
            col.fill_nulls_to(r);
            match (fill, col) {
                (Fill::Received, Col::Time(b)) => b.append_value(self.received_us),
                (Fill::TableName, Col::Str(b)) => b.append_value(self.def.name()),
                (Fill::Tenant, Col::Str(b)) => b.append_value(&self.ctx.tenant_id),
                (Fill::ItemId, Col::Str(b)) => {
                    let mut buf = uuid::Uuid::encode_buffer();
                    b.append_value(self.ids.next(self.received_us).hyphenated().encode_lower(&mut buf))
                }
                (Fill::Additional, Col::Str(b)) => match &additional {
                    Some(json) => b.append_value(json),
                    None => b.append_null(),
                },
                (fill, _) => unreachable!("{fill:?} fills a string or time column, as the standard columns are typed"),
            }
        }
        self.records += 1;
        self.in_record = false;
        debug_assert!(self.cols.iter().all(|c| c.len() <= self.records));
        Ok(())
    }

    /// The record's `AdditionalFields`: its own object, if it sent one, with its unknown fields
    /// added.
    fn additional_json(&mut self) -> Result<Option<String>, String> {
        if self.extra.is_empty() {
            return Ok(self.own_additional.take());
        }
        let mut obj: Vec<(String, String)> = match self.own_additional.take() {
            None => Vec::new(),
            Some(own) => match serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(&own) {
                Ok(m) => m.into_iter().map(|(k, v)| (k, v.to_string())).collect(),
                Err(_) => {
                    return Err(format!(
                        "field '{ADDITIONAL_FIELDS_COLUMN}' must be a JSON object when the record also has fields the table does not define ({})",
                        self.extra.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>().join(", ")
                    ));
                }
            },
        };
        for (k, raw) in self.extra.drain(..) {
            if !obj.iter().any(|(o, _)| *o == k) {
                obj.push((k, raw));
            }
        }
        let mut out = String::from("{");
        for (i, (k, v)) in obj.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push_str(&serde_json::to_string(k).expect("strings serialize"));
            out.push(':');
            out.push_str(v);
        }
        out.push('}');
        Ok(Some(out))
    }
}

/// Deepest nesting of arrays and objects accepted in a dynamic value.
pub const MAX_DEPTH: usize = 64;

/// Refuses a raw JSON value nested deeper than [`MAX_DEPTH`] (serde_json's own limit does not
/// apply to values it skips over as raw text).
fn check_depth<E: de::Error>(raw: &RawValue) -> Result<(), E> {
    let (mut depth, mut max, mut in_str, mut esc) = (0usize, 0usize, false, false);
    for &b in raw.get().as_bytes() {
        if in_str {
            match b {
                _ if esc => esc = false,
                b'\\' => esc = true,
                b'"' => in_str = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_str = true,
            b'[' | b'{' => {
                depth += 1;
                max = max.max(depth);
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    if max > MAX_DEPTH {
        return Err(E::custom(format!("the value is nested {max} levels deep; at most {MAX_DEPTH} are accepted")));
    }
    Ok(())
}

const TOO_MANY: &str = "fimlake:too-many-records:";

struct RecordsSeed<'s, 'a> {
    state: &'s mut State<'a>,
}

impl<'de> DeserializeSeed<'de> for RecordsSeed<'_, '_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for RecordsSeed<'_, '_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an array of records (JSON objects)")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element_seed(RecordSeed { state: &mut *self.state })?.is_some() {}
        Ok(())
    }
}

struct RecordSeed<'s, 'a> {
    state: &'s mut State<'a>,
}

impl<'de> DeserializeSeed<'de> for RecordSeed<'_, '_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for RecordSeed<'_, '_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a record (a JSON object)")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let st = self.state;
        st.begin_record().map_err(de::Error::custom)?;
        while let Some(key) = map.next_key::<Key<'de>>()? {
            let name = key.as_str();
            let column = st.lookup(name);
            st.field = match column {
                Some(i) => Field::Column(i),
                None => Field::Other(name.to_string()),
            };
            match column {
                Some(i) => {
                    st.claim(i).map_err(de::Error::custom)?;
                    let col = &st.def.columns()[i];
                    if col.origin == Origin::Server && i != st.additional_idx {
                        // Always the server's: the record's value is ignored.
                        map.next_value::<IgnoredAny>()?;
                        st.set_in[i] = usize::MAX;
                    } else if i == st.additional_idx {
                        let raw = map.next_value::<&'de RawValue>()?;
                        check_depth(raw)?;
                        st.set_in[i] = usize::MAX;
                        if raw.get() != "null" {
                            st.own_additional = Some(raw.get().to_string());
                        }
                    } else if col.ty == KustoType::Dynamic {
                        let raw = map.next_value::<&'de RawValue>()?;
                        check_depth(raw)?;
                        let Col::Str(b) = st.column(i) else { unreachable!("dynamic is Utf8") };
                        match raw.get() {
                            "null" => b.append_null(),
                            text => b.append_value(text),
                        }
                    } else {
                        let is_defaulted = i == st.time_idx || i == st.tenant_idx;
                        let ty = col.ty;
                        let seed = ValueSeed { col: st.column(i), ty, append_null: !is_defaulted };
                        let appended = map.next_value_seed(seed)?;
                        if !appended && is_defaulted {
                            // null TimeGenerated / TenantId: the server's value applies.
                            st.set_in[i] = usize::MAX;
                        }
                    }
                }
                None => {
                    let raw = map.next_value::<&'de RawValue>()?;
                    check_depth(raw)?;
                    if !st.additional.contains(name) {
                        st.additional.insert(name.to_string());
                    }
                    st.extra.push((name.to_string(), raw.get().to_string()));
                }
            }
        }
        st.field = Field::None;
        if let Err(msg) = st.end_record() {
            st.field = Field::Column(st.additional_idx);
            return Err(de::Error::custom(msg));
        }
        Ok(())
    }
}

/// A map key, borrowed from the input when it has no escapes.
enum Key<'de> {
    Borrowed(&'de str),
    Owned(String),
}

impl Key<'_> {
    fn as_str(&self) -> &str {
        match self {
            Key::Borrowed(s) => s,
            Key::Owned(s) => s,
        }
    }
}

impl<'de> serde::Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a field name")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Key<'de>, E> {
                Ok(Key::Borrowed(v))
            }
            fn visit_str<E>(self, v: &str) -> Result<Key<'de>, E> {
                Ok(Key::Owned(v.to_string()))
            }
            fn visit_string<E>(self, v: String) -> Result<Key<'de>, E> {
                Ok(Key::Owned(v))
            }
        }
        d.deserialize_str(V)
    }
}

/// Decodes one scalar into its column; returns whether a value (not null) was appended.
struct ValueSeed<'c> {
    col: &'c mut Col,
    ty: KustoType,
    /// False for columns the server fills when the value is null.
    append_null: bool,
}

impl<'de> DeserializeSeed<'de> for ValueSeed<'_> {
    type Value = bool;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<bool, D::Error> {
        d.deserialize_any(self)
    }
}

fn wrong<E: de::Error>(ty: KustoType, got: String) -> E {
    let hint = match ty {
        KustoType::DateTime => " (an ISO 8601 string such as \"2024-05-01T12:00:00Z\")",
        KustoType::Long | KustoType::Int => " (a JSON integer)",
        KustoType::Real => " (a JSON number)",
        KustoType::Bool => " (true or false)",
        KustoType::String | KustoType::Guid => " (a JSON string)",
        KustoType::Timespan => " (a string such as \"1.02:03:04\")",
        KustoType::Dynamic => "",
    };
    E::custom(format!("expected {ty}{hint}, got {got}"))
}

fn shorten(s: &str) -> String {
    let mut out: String = s.chars().take(40).collect();
    if out.len() < s.len() {
        out.push('…');
    }
    out
}

impl<'de> Visitor<'de> for ValueSeed<'_> {
    type Value = bool;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "a {} value", self.ty)
    }

    fn visit_unit<E: de::Error>(self) -> Result<bool, E> {
        if self.append_null {
            self.col.append_null();
        }
        Ok(false)
    }

    fn visit_none<E: de::Error>(self) -> Result<bool, E> {
        self.visit_unit()
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<bool, E> {
        match self.col {
            Col::Bool(b) => b.append_value(v),
            _ => return Err(wrong(self.ty, format!("boolean {v}"))),
        }
        Ok(true)
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<bool, E> {
        match self.col {
            Col::I64(b) => b.append_value(v),
            Col::I32(b) => b.append_value(
                i32::try_from(v)
                    .map_err(|_| E::custom(format!("expected int (32-bit), got {v}, which is out of range")))?,
            ),
            Col::F64(b) => b.append_value(v as f64),
            _ => return Err(wrong(self.ty, format!("number {v}"))),
        }
        Ok(true)
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<bool, E> {
        match i64::try_from(v) {
            Ok(i) => self.visit_i64(i),
            Err(_) => match self.col {
                Col::F64(b) => {
                    b.append_value(v as f64);
                    Ok(true)
                }
                _ => Err(E::custom(format!("expected {}, got {v}, which is out of range", self.ty))),
            },
        }
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<bool, E> {
        match self.col {
            Col::F64(b) => b.append_value(v),
            Col::I64(_) | Col::I32(_) if v.fract() == 0.0 && v.abs() < 9.0e15 => return self.visit_i64(v as i64),
            _ => return Err(wrong(self.ty, format!("number {v}"))),
        }
        Ok(true)
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<bool, E> {
        match self.col {
            Col::Str(b) => b.append_value(v),
            Col::Time(b) => {
                let t = fimlake_kusto::datetime::parse(v)
                    .map_err(|_| wrong::<E>(self.ty, format!("\"{}\"", shorten(v))))?;
                b.append_value(t);
            }
            Col::Span(b) => {
                let ns = fimlake_kusto::timespan::parse(v)
                    .ok_or_else(|| wrong::<E>(self.ty, format!("\"{}\"", shorten(v))))?;
                b.append_value(ns);
            }
            _ => return Err(wrong(self.ty, format!("string \"{}\"", shorten(v)))),
        }
        Ok(true)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, _: A) -> Result<bool, A::Error> {
        Err(wrong(self.ty, "an array".into()))
    }

    fn visit_map<A: MapAccess<'de>>(self, _: A) -> Result<bool, A::Error> {
        Err(wrong(self.ty, "an object".into()))
    }
}

impl State<'_> {
    fn finish(mut self, body_len: usize) -> Decoded {
        let records = self.records;
        if let Some(sizing) = &self.ctx.sizing {
            let strings = self.cols.iter().enumerate().filter_map(|(index, col)| match col {
                Col::Str(builder) => Some((index, builder.values_slice().len())),
                _ => None,
            });
            sizing.learn(body_len, records, strings);
        }
        let cols: Vec<ArrayRef> = self
            .cols
            .iter_mut()
            .map(|col| {
                col.fill_nulls_to(records);
                col.finish()
            })
            .collect();
        let batch = RecordBatch::try_new(self.def.schema().clone(), cols).expect("builders follow the table schema");
        Decoded { batch, additional_fields: self.additional }
    }
}
