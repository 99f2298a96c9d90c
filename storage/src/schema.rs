//! The table registry: every table fimlake stores, its columns and their Kusto and Arrow types.
//!
//! One [`TableDef`] drives everything else: the ingest decoder, the WAL, the Delta schema, the
//! DataFusion table provider and the `/v1/tables` listing. Adding a table is adding one
//! definition to [`TableRegistry::builtin`].

use std::collections::HashMap;
use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use serde::Serialize;

mod audit;
mod azure;

pub use fimlake_kusto::{KUSTO_TYPE_KEY, KustoType, timestamp_type};

/// Partition columns. They exist in the Delta schema (as Delta requires), are derived from
/// `TimeGenerated` at flush time and are not part of the queryable table schema.
pub const PARTITION_DATE: &str = "PartitionDate";
pub const PARTITION_HOUR: &str = "PartitionHour";

/// The column every table is partitioned, sorted and pruned by.
pub const TIME_COLUMN: &str = "TimeGenerated";
/// Server receive time, always set by the server.
pub const TIME_RECEIVED_COLUMN: &str = "_TimeReceived";
/// The table name, always set by the server.
pub const TYPE_COLUMN: &str = "Type";
/// Unique record id, always set by the server.
pub const ITEM_ID_COLUMN: &str = "_ItemId";
/// Workspace id; filled by the server when the record has none.
pub const TENANT_ID_COLUMN: &str = "TenantId";
/// Fields a record carried that its table does not know, kept as one JSON object.
pub const ADDITIONAL_FIELDS_COLUMN: &str = "AdditionalFields";
/// The second sort key within a file.
pub const COMPUTER_COLUMN: &str = "Computer";

/// String columns whose values are random text (content hashes): dictionary encoding cannot
/// shrink them, zstd's entropy coding can (a tenth of the table's bytes with LZ4 instead).
const RANDOM_TEXT_COLUMNS: &[&str] = &["FileContentChecksum", "PreviousFileContentChecksum"];

/// How a column's Parquet pages are compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PageCodec {
    /// zstd: the smallest pages. Every column chunk a query reads creates a zstd context, and
    /// zstd asks the CPU for its features each time (`cpuid`, a trip to the hypervisor on a
    /// VM): 9 % of a scan's CPU over hourly files (BENCHMARKS.md).
    Zstd,
    /// LZ4 (raw), which needs no context: for the strings a fleet repeats (machine names, paths,
    /// kinds of change, states), which dictionary encoding already keeps small and most hunting
    /// queries filter and group by.
    Lz4,
}

/// Who sets a column's value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Origin {
    /// Sent by the agent.
    Record,
    /// Sent by the agent; the server fills it when absent (`TimeGenerated`, `TenantId`).
    RecordOrServer,
    /// Always set by the server; a value in the record is ignored.
    Server,
}

#[derive(Debug, Clone, Serialize)]
pub struct Column {
    pub name: String,
    #[serde(rename = "type")]
    pub ty: KustoType,
    pub description: String,
    pub origin: Origin,
}

impl Column {
    /// How this column's pages are compressed: LZ4 for strings but random text, zstd for the
    /// rest (timestamps, numbers, ids and dynamic values, which zstd shrinks by half or more).
    pub fn page_codec(&self) -> PageCodec {
        if self.ty == KustoType::String && !RANDOM_TEXT_COLUMNS.contains(&self.name.as_str()) {
            PageCodec::Lz4
        } else {
            PageCodec::Zstd
        }
    }
}

/// One table: its name, columns (in storage order) and derived Arrow schema.
#[derive(Debug)]
pub struct TableDef {
    name: String,
    description: String,
    columns: Vec<Column>,
    index: HashMap<String, usize>,
    schema: SchemaRef,
    /// `schema` as queries read it: see [`TableDef::scan_schema`].
    scan_schema: SchemaRef,
    internal: bool,
}

impl TableDef {
    /// Builds a table from its Azure columns. The standard columns every Log Analytics table
    /// has (`TenantId`, `TimeGenerated`, `_TimeReceived`, `Type`, `_ItemId`...) and
    /// `AdditionalFields` are added where the list lacks them. `TimeGenerated` comes first.
    pub fn new(name: &str, description: &str, azure_columns: &[(&str, KustoType, &str)]) -> Self {
        let mut columns = vec![
            std_column(TENANT_ID_COLUMN, KustoType::String, "The workspace id", Origin::RecordOrServer),
            std_column(
                TIME_COLUMN,
                KustoType::DateTime,
                "Date and time the record was created; the receive time when the record has none",
                Origin::RecordOrServer,
            ),
        ];
        for (col, ty, desc) in azure_columns {
            if columns.iter().any(|c| c.name == *col) {
                continue;
            }
            let origin = if *col == TYPE_COLUMN { Origin::Server } else { Origin::Record };
            columns.push(Column { name: col.to_string(), ty: *ty, description: desc.to_string(), origin });
        }
        let standard = [
            (TYPE_COLUMN, KustoType::String, "The name of the table", Origin::Server),
            (TIME_RECEIVED_COLUMN, KustoType::DateTime, "When the server received the record", Origin::Server),
            (ITEM_ID_COLUMN, KustoType::Guid, "Unique record id", Origin::Server),
            ("_ResourceId", KustoType::String, "A unique identifier for the resource", Origin::Record),
            ("_SubscriptionId", KustoType::String, "The subscription of the resource", Origin::Record),
            ("_IsBillable", KustoType::String, "Whether ingesting the record is billable", Origin::Record),
            ("_BilledSize", KustoType::Real, "The record size in bytes", Origin::Record),
            (
                ADDITIONAL_FIELDS_COLUMN,
                KustoType::Dynamic,
                "Fields of the record that the table does not define, as one JSON object",
                Origin::Server,
            ),
        ];
        for (col, ty, desc, origin) in standard {
            if !columns.iter().any(|c| c.name == col) {
                columns.push(std_column(col, ty, desc, origin));
            }
        }
        let index = columns.iter().enumerate().map(|(i, c)| (c.name.clone(), i)).collect();
        let fields: Vec<Field> = columns.iter().map(|c| c.ty.field(&c.name)).collect();
        let schema = Arc::new(Schema::new(fields));
        TableDef {
            name: name.to_string(),
            description: description.to_string(),
            columns,
            index,
            scan_schema: string_views(&schema),
            schema,
            internal: false,
        }
    }

    /// A table only fimlake itself writes (the alerting audit trail): clients cannot post to it.
    pub fn internal(mut self) -> Self {
        self.internal = true;
        self
    }

    /// Whether only fimlake itself writes this table.
    pub fn is_internal(&self) -> bool {
        self.internal
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn description(&self) -> &str {
        &self.description
    }

    pub fn columns(&self) -> &[Column] {
        &self.columns
    }

    pub fn column_index(&self, name: &str) -> Option<usize> {
        self.index.get(name).copied()
    }

    /// The queryable schema: every column, without the partition columns.
    pub fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    /// The schema a query's scan produces: [`TableDef::schema`] with every `Utf8` column read as
    /// `Utf8View`. A Parquet page's strings are then referenced where they were decoded instead
    /// of copied into one new buffer per batch (a dictionary page into a fresh array for each
    /// batch), which was the largest single cost of the scans of string columns (BENCHMARKS.md).
    /// Field names and metadata (the Kusto type) are those of `schema`.
    pub fn scan_schema(&self) -> &SchemaRef {
        &self.scan_schema
    }

    /// The Delta table schema: the queryable schema plus the two partition columns.
    pub fn delta_schema(&self) -> SchemaRef {
        let mut fields: Vec<Field> = self.schema.fields().iter().map(|f| f.as_ref().clone()).collect();
        fields.push(Field::new(PARTITION_DATE, DataType::Date32, true));
        fields.push(Field::new(PARTITION_HOUR, DataType::Int32, true));
        Arc::new(Schema::new(fields))
    }
}

/// `schema` with each `Utf8` field as `Utf8View`, names and metadata kept.
fn string_views(schema: &SchemaRef) -> SchemaRef {
    let fields: Vec<Field> = schema
        .fields()
        .iter()
        .map(|f| match f.data_type() {
            DataType::Utf8 => f.as_ref().clone().with_data_type(DataType::Utf8View),
            _ => f.as_ref().clone(),
        })
        .collect();
    Arc::new(Schema::new_with_metadata(fields, schema.metadata().clone()))
}

fn std_column(name: &str, ty: KustoType, description: &str, origin: Origin) -> Column {
    Column { name: name.to_string(), ty, description: description.to_string(), origin }
}

/// All tables, by name. Table names are case-sensitive, as in Kusto.
#[derive(Debug, Clone)]
pub struct TableRegistry {
    tables: Vec<Arc<TableDef>>,
}

impl TableRegistry {
    /// The tables of Azure Change Tracking: `ConfigurationChange`, `ConfigurationData`,
    /// `Heartbeat`, with the exact Azure column names and types; and fimlake's own audit trail
    /// of alerting (`AlertEvaluation`, `AlertEvent`, `AlertDelivery`) and of the API (`AuditLog`), which only the server
    /// writes ([`TableDef::is_internal`]).
    pub fn builtin() -> Self {
        TableRegistry {
            tables: vec![
                Arc::new(TableDef::new(
                    "ConfigurationChange",
                    "Changes to in-guest configuration data: files, software, registry keys, Windows services and Linux daemons",
                    azure::CONFIGURATION_CHANGE,
                )),
                Arc::new(TableDef::new(
                    "ConfigurationData",
                    "The last reported state of in-guest configuration data: files, software, registry keys, services and daemons",
                    azure::CONFIGURATION_DATA,
                )),
                Arc::new(TableDef::new(
                    "Heartbeat",
                    "Records logged by agents once per minute to report on agent health",
                    &[azure::HEARTBEAT, azure::HEARTBEAT_OBSERVED, azure::HEARTBEAT_FLEET].concat(),
                )),
                Arc::new(
                    TableDef::new(
                        "AlertEvaluation",
                        "One record per evaluation of an alert rule: its window, rows, alerts and outcome",
                        audit::ALERT_EVALUATION,
                    )
                    .internal(),
                ),
                Arc::new(
                    TableDef::new(
                        "AlertEvent",
                        "One record per alert fired or resolved, and what happened to its notification",
                        audit::ALERT_EVENT,
                    )
                    .internal(),
                ),
                Arc::new(
                    TableDef::new(
                        "AuditLog",
                        "Who called the API: every query, every alert rule change, every refused request",
                        audit::AUDIT_LOG,
                    )
                    .internal(),
                ),
                Arc::new(
                    TableDef::new(
                        "AlertDelivery",
                        "One record per attempt to deliver a notification to a webhook or an email server",
                        audit::ALERT_DELIVERY,
                    )
                    .internal(),
                ),
            ],
        }
    }

    pub fn get(&self, name: &str) -> Option<&Arc<TableDef>> {
        self.tables.iter().find(|t| t.name == name)
    }

    pub fn tables(&self) -> &[Arc<TableDef>] {
        &self.tables
    }

    pub fn names(&self) -> Vec<&str> {
        self.tables.iter().map(|t| t.name.as_str()).collect()
    }

    /// An empty in-memory table of each schema, by name: what queries are planned against
    /// when only their shape matters (rule validation, conformance tests).
    pub fn empty_tables(&self) -> Vec<(String, Arc<dyn datafusion::catalog::TableProvider>)> {
        self.tables
            .iter()
            .map(|t| {
                let mem = datafusion::datasource::MemTable::try_new(t.scan_schema().clone(), vec![vec![]])
                    .expect("an empty table of a valid schema");
                (t.name().to_string(), Arc::new(mem) as Arc<dyn datafusion::catalog::TableProvider>)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_are_compressed_with_lz4_but_random_text_and_other_types_with_zstd() {
        let reg = TableRegistry::builtin();
        let codec = |table: &str, column: &str| {
            let def = reg.get(table).unwrap();
            def.columns()[def.column_index(column).unwrap()].page_codec()
        };
        for column in ["Computer", "FileSystemPath", "ChangeCategory", "ConfigChangeType", "Acls"] {
            assert_eq!(codec("ConfigurationChange", column), PageCodec::Lz4, "{column}");
        }
        for column in ["FileContentChecksum", "PreviousFileContentChecksum", "TimeGenerated", "Size", "_ItemId"] {
            assert_eq!(codec("ConfigurationChange", column), PageCodec::Zstd, "{column}");
        }
        assert_eq!(codec("ConfigurationData", "FileContentChecksum"), PageCodec::Zstd);
        assert_eq!(codec("ConfigurationChange", "AdditionalFields"), PageCodec::Zstd, "dynamic values");
    }

    #[test]
    fn azure_tables_have_their_documented_columns() {
        let reg = TableRegistry::builtin();
        for (table, azure_count) in [("ConfigurationChange", 58), ("ConfigurationData", 41), ("Heartbeat", 31)] {
            let def = reg.get(table).unwrap();
            let azure = match table {
                "ConfigurationChange" => azure::CONFIGURATION_CHANGE,
                "ConfigurationData" => azure::CONFIGURATION_DATA,
                _ => azure::HEARTBEAT,
            };
            assert_eq!(azure.len(), azure_count, "{table}");
            for (name, ty, _) in azure {
                let i = def.column_index(name).unwrap_or_else(|| panic!("{table}.{name} missing"));
                assert_eq!(def.columns()[i].ty, *ty, "{table}.{name}");
            }
            for std in [
                TENANT_ID_COLUMN,
                TIME_COLUMN,
                TIME_RECEIVED_COLUMN,
                TYPE_COLUMN,
                ITEM_ID_COLUMN,
                ADDITIONAL_FIELDS_COLUMN,
            ] {
                assert!(def.column_index(std).is_some(), "{table}.{std}");
            }
            assert_eq!(def.columns()[0].name, TENANT_ID_COLUMN);
            assert_eq!(def.columns()[1].name, TIME_COLUMN);
            assert_eq!(def.schema().fields().len(), def.columns().len());
        }
        assert_eq!(reg.get("ConfigurationChange").unwrap().columns().len(), 62);
        assert_eq!(reg.get("Heartbeat").unwrap().columns().len(), 38);
    }

    #[test]
    fn a_scan_reads_every_string_column_as_views_and_nothing_else_differs() {
        for def in TableRegistry::builtin().tables() {
            let (stored, scanned) = (def.schema(), def.scan_schema());
            assert_eq!(stored.fields().len(), scanned.fields().len(), "{}", def.name());
            for (s, v) in stored.fields().iter().zip(scanned.fields()) {
                let expected = match s.data_type() {
                    DataType::Utf8 => DataType::Utf8View,
                    other => other.clone(),
                };
                assert_eq!(v.data_type(), &expected, "{}.{}", def.name(), s.name());
                assert_eq!((v.name(), v.metadata(), v.is_nullable()), (s.name(), s.metadata(), s.is_nullable()));
            }
        }
    }

    #[test]
    fn kusto_types_map_to_arrow_types() {
        let def = TableRegistry::builtin().get("Heartbeat").unwrap().clone();
        let ty = |c: &str| def.schema().field_with_name(c).unwrap().data_type().clone();
        assert_eq!(ty("TimeGenerated"), timestamp_type());
        assert_eq!(ty("ComputerPrivateIPs"), DataType::Utf8);
        assert_eq!(ty("IsGatewayInstalled"), DataType::Boolean);
        assert_eq!(ty("RemoteIPLatitude"), DataType::Float64);
        let dynamic = def.schema().field_with_name("ComputerPrivateIPs").unwrap();
        assert_eq!(dynamic.metadata().get(KUSTO_TYPE_KEY).unwrap(), "dynamic");
        let delta = def.delta_schema();
        assert_eq!(delta.fields().len(), def.schema().fields().len() + 2);
    }

    #[test]
    fn table_names_are_case_sensitive() {
        let reg = TableRegistry::builtin();
        assert!(reg.get("Heartbeat").is_some());
        assert!(reg.get("heartbeat").is_none());
    }
}
