//! Confidential SQL: the user's CSV table is loaded into an in-memory SQLite database as table
//! `input`, and the user's query runs against it read-only. The result is CSV.

use std::io::Read;
use std::time::{Duration, Instant};

use cdvm_protocol::{kinds, InputBody};
use rusqlite::types::ValueRef;
use rusqlite::Connection;

use super::{input_type, media, DataSource, ExecError, Executor, Output};

/// The SQL executor.
#[derive(Debug)]
pub struct Sql {
    /// Longest a query may run.
    pub time_limit: Duration,
    /// Most result rows returned.
    pub max_rows: usize,
}

impl Default for Sql {
    fn default() -> Self {
        Self {
            time_limit: Duration::from_secs(30),
            max_rows: 10_000,
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum ColType {
    Integer,
    Real,
    Text,
}

/// Widens `t` so that `v` fits: INTEGER → REAL → TEXT, as the values come.
fn widen(t: ColType, v: &str) -> ColType {
    if v.is_empty() {
        return t;
    }
    let mut t = t;
    if t == ColType::Integer && v.parse::<i64>().is_err() {
        t = ColType::Real;
    }
    // Only finite numbers: "inf" or "1e999" stay text, as SQLite's REAL affinity keeps them.
    if t == ColType::Real && !v.parse::<f64>().is_ok_and(f64::is_finite) {
        t = ColType::Text;
    }
    t
}

fn quote_ident(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

/// Loads CSV from `csv` into table `name`, streaming: rows go into an untyped staging table as
/// they are read (the input is never held whole outside SQLite), column types are inferred on
/// the way, then the typed table is filled from the staging one and the staging table dropped.
fn load(conn: &Connection, name: &str, csv: &mut dyn Read) -> Result<u64, ExecError> {
    let mut reader = csv::ReaderBuilder::new().from_reader(csv);
    let headers: Vec<String> = reader
        .headers()
        .map_err(|e| ExecError::BadInput(format!("CSV header{}: {e}", of_table(name))))?
        .iter()
        .map(|h| h.trim().to_string())
        .collect();
    if headers.is_empty() || headers.iter().any(String::is_empty) {
        return Err(ExecError::BadInput(format!(
            "CSV header{} must name every column",
            of_table(name)
        )));
    }
    let sql_err = |e: rusqlite::Error| ExecError::BadInput(format!("loading table: {e}"));
    let n = headers.len();
    let staging = quote_ident(&format!("cdvm_staging_{name}"));
    let untyped: Vec<String> = (0..n).map(|i| format!("c{i}")).collect();
    conn.execute_batch(&format!(
        "CREATE TEMP TABLE {staging} ({});",
        untyped.join(", ")
    ))
    .map_err(sql_err)?;
    let placeholders = vec!["?"; n].join(", ");
    let mut types = vec![ColType::Integer; n];
    let mut rows = 0u64;
    // One transaction for the whole load: autocommit per row would cost a journal round each.
    conn.execute_batch("BEGIN;").map_err(sql_err)?;
    {
        let mut insert = conn
            .prepare(&format!("INSERT INTO {staging} VALUES ({placeholders})"))
            .map_err(sql_err)?;
        let mut record = csv::StringRecord::new();
        loop {
            match reader.read_record(&mut record) {
                Ok(true) => {}
                Ok(false) => break,
                Err(e) => return Err(csv_error(name, e)),
            }
            let values: Vec<&str> = (0..n).map(|i| record.get(i).unwrap_or("").trim()).collect();
            for (t, v) in types.iter_mut().zip(&values) {
                *t = widen(*t, v);
            }
            insert
                .execute(rusqlite::params_from_iter(values))
                .map_err(sql_err)?;
            rows += 1;
        }
    }
    let cols: Vec<String> = headers
        .iter()
        .zip(&types)
        .map(|(h, t)| {
            let ty = match t {
                ColType::Integer => "INTEGER",
                ColType::Real => "REAL",
                ColType::Text => "TEXT",
            };
            format!("{} {ty}", quote_ident(h))
        })
        .collect();
    let table = quote_ident(name);
    conn.execute_batch(&format!("CREATE TABLE {table} ({});", cols.join(", ")))
        .map_err(sql_err)?;
    // The typed columns' affinity converts each staged text to INTEGER or REAL exactly where
    // `widen` saw a number (finite, trimmed), so one statement fills the table at SQLite's speed.
    let select: Vec<String> = untyped.iter().map(|c| format!("NULLIF({c}, '')")).collect();
    conn.execute_batch(&format!(
        "INSERT INTO {table} SELECT {} FROM {staging} ORDER BY rowid;",
        select.join(", ")
    ))
    .map_err(sql_err)?;
    conn.execute_batch(&format!("DROP TABLE {staging}; COMMIT;"))
        .map_err(sql_err)?;
    Ok(rows)
}

/// " of table `name`", except for the single table of a one-file input.
fn of_table(name: &str) -> String {
    if name == "input" {
        String::new()
    } else {
        format!(" of table `{name}`")
    }
}

/// A CSV error, or the reader's own failure (a blob that failed to download or decrypt) in its
/// own words.
fn csv_error(name: &str, e: csv::Error) -> ExecError {
    if !e.is_io_error() {
        return ExecError::BadInput(format!("CSV{}: {e}", of_table(name)));
    }
    match e.into_kind() {
        csv::ErrorKind::Io(io) => super::read_error(io),
        _ => ExecError::BadInput(format!("CSV{}: unreadable", of_table(name))),
    }
}

/// The table name for a file of a folder input: its stem, if it is a plain identifier.
fn table_name(path: &str) -> Result<String, ExecError> {
    let file = path.rsplit('/').next().unwrap_or(path);
    let Some(stem) = file.strip_suffix(".csv") else {
        return Err(ExecError::BadInput(format!(
            "`{path}` is not a .csv file; a folder for SQL holds only .csv files (one table each)"
        )));
    };
    let ok = !stem.is_empty()
        && stem.len() <= 64
        && stem.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !stem.starts_with(|c: char| c.is_ascii_digit())
        && !stem.to_ascii_lowercase().starts_with("sqlite_")
        && !stem.starts_with("cdvm_staging_");
    if ok {
        Ok(stem.to_string())
    } else {
        Err(ExecError::BadInput(format!(
            "`{path}`: a table name must be letters, digits and _ (not starting with a digit)"
        )))
    }
}

fn cell(v: ValueRef<'_>) -> String {
    match v {
        ValueRef::Null => String::new(),
        ValueRef::Integer(i) => i.to_string(),
        ValueRef::Real(f) => f.to_string(),
        ValueRef::Text(t) => String::from_utf8_lossy(t).into_owned(),
        ValueRef::Blob(b) => hex::encode(b),
    }
}

/// A query failure; an interruption at the deadline is the time limit, not a query error.
fn query_error(e: rusqlite::Error, deadline: Instant) -> ExecError {
    if Instant::now() > deadline {
        ExecError::TimeLimit(format!("query stopped at its time limit ({e})"))
    } else {
        ExecError::Failed(format!("query: {e}"))
    }
}

impl Sql {
    fn query(&self, conn: &Connection, query: &str) -> Result<String, ExecError> {
        let deadline = Instant::now() + self.time_limit;
        // Abort runaway queries (e.g. recursive CTEs) at the deadline.
        conn.progress_handler(10_000, Some(move || Instant::now() > deadline));
        let mut stmt = conn.prepare(query).map_err(|e| query_error(e, deadline))?;
        if !stmt.readonly() {
            return Err(ExecError::Failed(
                "only read-only queries (SELECT) are allowed".into(),
            ));
        }
        let names: Vec<String> = stmt.column_names().iter().map(|s| s.to_string()).collect();
        let mut out = csv::Writer::from_writer(Vec::new());
        out.write_record(&names)
            .map_err(|e| ExecError::Internal(e.to_string()))?;
        let mut rows = stmt.query([]).map_err(|e| query_error(e, deadline))?;
        let mut n = 0usize;
        while let Some(row) = rows.next().map_err(|e| query_error(e, deadline))? {
            n += 1;
            if n > self.max_rows {
                return Err(ExecError::TooLarge(format!(
                    "result has more than {} rows",
                    self.max_rows
                )));
            }
            let record: Vec<String> = (0..names.len())
                .map(|i| row.get_ref(i).map(cell).unwrap_or_default())
                .collect();
            out.write_record(&record)
                .map_err(|e| ExecError::Internal(e.to_string()))?;
        }
        let bytes = out
            .into_inner()
            .map_err(|e| ExecError::Internal(e.to_string()))?;
        String::from_utf8(bytes).map_err(|e| ExecError::Internal(e.to_string()))
    }
}

impl Executor for Sql {
    fn kind(&self) -> u16 {
        kinds::SQL
    }

    fn run(
        &self,
        input: &InputBody,
        data: DataSource<'_>,
        _partial: &super::Partial,
    ) -> Result<Output, ExecError> {
        let InputBody::Sql { query, .. } = input else {
            return Err(ExecError::WrongInput {
                kind: self.kind(),
                got: input_type(input),
            });
        };
        let conn = Connection::open_in_memory().map_err(|e| ExecError::Internal(e.to_string()))?;
        let DataSource {
            file_type,
            mut reader,
        } = data;
        match file_type.as_str() {
            media::CSV => {
                load(&conn, "input", &mut reader)?;
            }
            media::TAR => {
                let mut names = std::collections::BTreeSet::new();
                super::for_each_file(&mut reader, |path, file| {
                    let name = table_name(path)?;
                    if !names.insert(name.to_ascii_lowercase()) {
                        return Err(ExecError::BadInput(format!(
                            "two files give table `{name}`"
                        )));
                    }
                    load(&conn, &name, file).map(|_| ())
                })?;
                if names.is_empty() {
                    return Err(ExecError::BadInput("the folder holds no .csv file".into()));
                }
            }
            other => {
                return Err(ExecError::BadInput(format!(
                    "file-type `{other}` is not supported for SQL (use {} or {})",
                    media::CSV,
                    media::TAR
                )))
            }
        }
        let body = self.query(&conn, query)?;
        Ok(Output {
            media_type: "text/csv",
            body,
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use cdvm_protocol::ErrorClass;

    fn run(csv: &str, query: &str) -> Result<String, ExecError> {
        super::super::run_inline(
            &Sql::default(),
            &InputBody::Sql {
                table_csv: csv.into(),
                query: query.into(),
            },
            &super::super::Partial::none(),
        )
        .map(|o| o.body)
    }

    #[test]
    fn aggregates_typed_columns() {
        let csv = "name,dept,salary\nann,eng,120\nbob,eng,100\ncat,ops,90.5\n";
        let out = run(
            csv,
            "SELECT dept, SUM(salary) AS total FROM input GROUP BY dept ORDER BY dept",
        )
        .unwrap();
        assert_eq!(out, "dept,total\neng,220\nops,90.5\n");
    }

    #[test]
    fn column_types_follow_every_value_and_only_finite_numbers_count() {
        let q = "SELECT typeof(x) AS t, x FROM input ORDER BY rowid";
        assert_eq!(
            run("x,y\n1,a\n,b\n-7,c\n", q).unwrap(),
            "t,x\ninteger,1\nnull,\ninteger,-7\n"
        );
        assert_eq!(run("x\n1\n2.5\n", q).unwrap(), "t,x\nreal,1\nreal,2.5\n");
        assert_eq!(run("x\n1\ninf\n", q).unwrap(), "t,x\ntext,1\ntext,inf\n");
        assert_eq!(run("x\n1e999\n", q).unwrap(), "t,x\ntext,1e999\n");
    }

    #[test]
    fn integer_columns_sort_numerically() {
        let out = run("n\n10\n9\n100\n", "SELECT n FROM input ORDER BY n").unwrap();
        assert_eq!(out, "n\n9\n10\n100\n");
    }

    #[test]
    fn writes_are_refused() {
        let err = run("a\n1\n", "DELETE FROM input").unwrap_err();
        assert!(err.to_string().contains("read-only"), "{err}");
        assert_eq!(err.class(), ErrorClass::JobFailed);
    }

    #[test]
    fn bad_sql_and_bad_csv_are_clear_errors_with_their_public_class() {
        let query = run("a\n1\n", "SELEC nonsense").unwrap_err();
        assert!(query.to_string().contains("query"), "{query}");
        assert_eq!(query.class(), ErrorClass::JobFailed);
        let csv = run("a,b\n1\n", "SELECT * FROM input").unwrap_err();
        assert!(csv.to_string().contains("CSV"), "{csv}");
        assert_eq!(csv.class(), ErrorClass::BadInput);
        // The table is `input` (docs/protocol.md §5.5); any other name is an SQL error.
        let table = run("a\n1\n", "SELECT a FROM t").unwrap_err();
        assert_eq!(table.to_string(), "query: no such table: t");
    }

    #[test]
    fn too_many_rows_is_output_too_large() {
        let sql = Sql {
            time_limit: Duration::from_secs(5),
            max_rows: 2,
        };
        let input = InputBody::Sql {
            table_csv: "a\n1\n2\n3\n".into(),
            query: "SELECT a FROM input".into(),
        };
        assert_eq!(
            super::super::run_inline(&sql, &input, &super::super::Partial::none())
                .unwrap_err()
                .class(),
            ErrorClass::OutputTooLarge
        );
    }

    #[test]
    fn runaway_query_is_stopped() {
        let sql = Sql {
            time_limit: Duration::from_millis(200),
            max_rows: 10,
        };
        let input = InputBody::Sql {
            table_csv: "a\n1\n".into(),
            query: "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c) SELECT count(*) FROM c".into(),
        };
        assert_eq!(
            super::super::run_inline(&sql, &input, &super::super::Partial::none())
                .unwrap_err()
                .class(),
            ErrorClass::TimeLimit
        );
    }

    #[test]
    fn wrong_input_type_is_refused() {
        let err = super::super::run_inline(
            &Sql::default(),
            &InputBody::TextStats { text: "x".into() },
            &super::super::Partial::none(),
        )
        .unwrap_err();
        assert!(matches!(err, ExecError::WrongInput { .. }));
        assert_eq!(err.class(), ErrorClass::BadInput);
    }

    /// The JSON block under the `#### {heading}` line of docs/protocol.md.
    fn doc_block(doc: &str, heading: &str) -> serde_json::Value {
        let at = doc
            .find(&format!("#### {heading}"))
            .unwrap_or_else(|| panic!("no `#### {heading}` in docs/protocol.md"));
        let rest = &doc[at..];
        let start = rest.find("```json\n").unwrap() + "```json\n".len();
        let end = start + rest[start..].find("\n```").unwrap();
        serde_json::from_str(&rest[start..end]).unwrap()
    }

    /// docs/protocol.md §11 is a contract other clients are written from: its input, run through
    /// the real executor, must give exactly its result (and its error example, the executor's
    /// own words for the misspelt column).
    #[test]
    fn worked_example_in_protocol_md_is_a_real_run() {
        let doc = include_str!("../../../../docs/protocol.md");
        let input = doc_block(doc, "6d.");
        let body: InputBody = serde_json::from_value(input["body"].clone()).unwrap();
        let InputBody::Sql { table_csv, query } = &body else {
            panic!("the worked example is an SQL job");
        };
        assert!(query.contains("FROM input"), "{query}");
        let out = super::super::run_inline(&Sql::default(), &body, &super::super::Partial::none())
            .unwrap();
        let result = doc_block(doc, "8b.");
        assert_eq!(result["outcome"]["output"], out.body.as_str());
        assert_eq!(result["outcome"]["media_type"], out.media_type);
        let misspelt = query.replace("avg(salary)", "avg(salry)");
        assert_ne!(&misspelt, query, "the error example misspells `salary`");
        let cdvm_protocol::Data::Inline(table_csv) = table_csv else {
            panic!("the worked example's table is inline");
        };
        let err = run(table_csv, &misspelt).unwrap_err();
        assert_eq!(
            doc_block(doc, "8c.")["outcome"]["message"],
            err.to_string().as_str()
        );
        assert_eq!(err.class(), ErrorClass::JobFailed);
        // …and 8d's public tag carries that class, nothing of the message.
        let tags = doc_block(doc, "8d.")["tags"].to_string();
        assert!(
            tags.contains(r#"["status","error","job-failed"]"#),
            "{tags}"
        );
    }
}
