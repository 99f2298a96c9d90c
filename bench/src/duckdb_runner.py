# The DuckDB side of fimlake's benchmark harness (bench/src/queries.rs starts it).
#
# Reads one JSON request per line on stdin and answers one JSON line on stdout:
#   {"op": "open", "tables": {"Name": "/path/to/delta/table", ...}}
#       -> a view per table over exactly the Parquet files of the Delta table's current version
#          (listed by the `deltalake` package: the files fimlake committed, read unchanged)
#   {"op": "run", "sql": "..."}
#       -> {"ms": wall time of the query with its result as an Arrow table, "rows": n, "columns": [...], "sums": {col: sum}}
import json
import sys
import time

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
from deltalake import DeltaTable

con = duckdb.connect()
con.execute("SET TimeZone = 'UTC'")


def numeric_sums(table):
    sums = {}
    for name, column in zip(table.column_names, table.columns):
        if pa.types.is_integer(column.type) or pa.types.is_floating(column.type):
            sums[name] = pc.sum(column).as_py() or 0
    return sums


for line in sys.stdin:
    req = json.loads(line)
    try:
        if req["op"] == "open":
            files = {}
            for name, path in req["tables"].items():
                uris = DeltaTable(path).file_uris()
                files[name] = len(uris)
                con.execute(f"CREATE OR REPLACE VIEW {name} AS SELECT * FROM read_parquet({uris!r})")
            reply = {"files": files, "version": duckdb.__version__, "threads": con.execute("SELECT current_setting('threads')").fetchall()[0][0]}
        elif req["op"] == "run":
            # The whole result materialised as Arrow, as fimlake materialises its batches.
            start = time.perf_counter()
            table = con.sql(req["sql"]).to_arrow_table()
            ms = (time.perf_counter() - start) * 1000
            reply = {"ms": ms, "rows": table.num_rows, "columns": table.column_names, "sums": numeric_sums(table)}
        else:
            reply = {"error": f"unknown op {req['op']!r}"}
    except Exception as e:  # reported to the harness, which stops with it
        reply = {"error": f"{type(e).__name__}: {e}"}
    print(json.dumps(reply), flush=True)
