//! A generated salary table of any size, for `cdvm demo --input-size`, the tests and the
//! benchmark: deterministic rows, written as a stream (never held whole).

use std::io::Write;
use std::path::Path;

/// The departments rows cycle through.
pub const DEPARTMENTS: [&str; 4] = ["engineering", "sales", "research", "operations"];

/// The query the demo runs over the generated table.
/// Integer aggregates only, so [`expected`] can compute the exact answer independently.
pub const QUERY: &str = "SELECT department, COUNT(*) AS people, SUM(salary) AS total_salary, MAX(salary) AS top_salary FROM input GROUP BY department ORDER BY department";

/// Row `i`: `employee-<i>,<department>,<salary>`; salaries are a fixed function of `i`.
fn row(i: u64) -> String {
    let dept = DEPARTMENTS[(i % DEPARTMENTS.len() as u64) as usize];
    let salary = 50_000 + (i.wrapping_mul(7919) % 100_000);
    format!("employee-{i:09},{dept},{salary}\n")
}

/// Writes a CSV of at least `bytes` bytes (whole rows) to `path`; returns (rows, bytes).
pub fn write(path: &Path, bytes: u64) -> std::io::Result<(u64, u64)> {
    let mut out = std::io::BufWriter::new(std::fs::File::create(path)?);
    let header = "employee,department,salary\n";
    out.write_all(header.as_bytes())?;
    let mut written = header.len() as u64;
    let mut rows = 0u64;
    while written < bytes {
        let r = row(rows);
        out.write_all(r.as_bytes())?;
        written += r.len() as u64;
        rows += 1;
    }
    out.flush()?;
    Ok((rows, written))
}

/// The query's expected answer over a table of `rows` rows, computed here independently of
/// SQLite: one CSV line per department.
pub fn expected(rows: u64) -> String {
    let mut out = String::from("department,people,total_salary,top_salary\n");
    let mut depts: Vec<(&str, u64, u128, u64)> =
        DEPARTMENTS.iter().map(|d| (*d, 0, 0, 0)).collect();
    for i in 0..rows {
        let d = &mut depts[(i % DEPARTMENTS.len() as u64) as usize];
        let salary = 50_000 + (i.wrapping_mul(7919) % 100_000);
        d.1 += 1;
        d.2 += u128::from(salary);
        d.3 = d.3.max(salary);
    }
    depts.sort_by(|a, b| a.0.cmp(b.0));
    for (name, n, sum, top) in depts {
        if n == 0 {
            continue;
        }
        out.push_str(&format!("{name},{n},{sum},{top}\n"));
    }
    out
}

/// Parses a size such as `10MB`, `100MiB`, `1GB`, `512KB` or a plain byte count.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("`{text}` is not a size such as 10MB"))?;
    let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kb" | "k" => 1_000,
        "kib" => 1 << 10,
        "mb" | "m" => 1_000_000,
        "mib" => 1 << 20,
        "gb" | "g" => 1_000_000_000,
        "gib" => 1 << 30,
        other => {
            return Err(format!(
                "unknown size unit `{other}` (use KB, MB, GB, KiB, MiB, GiB)"
            ))
        }
    };
    n.checked_mul(mult)
        .ok_or_else(|| format!("`{text}` is too large"))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn sizes_parse_and_tables_reach_their_size() {
        assert_eq!(parse_size("10MB").unwrap(), 10_000_000);
        assert_eq!(parse_size("2MiB").unwrap(), 2 << 20);
        assert_eq!(parse_size("123").unwrap(), 123);
        assert!(parse_size("ten").is_err());
        assert!(parse_size("5TB").is_err());
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t.csv");
        let (rows, bytes) = write(&p, 10_000).unwrap();
        assert!(bytes >= 10_000);
        assert_eq!(std::fs::metadata(&p).unwrap().len(), bytes);
        assert_eq!(
            std::fs::read_to_string(&p).unwrap().lines().count() as u64,
            rows + 1
        );
        assert!(
            expected(rows).starts_with("department,people,total_salary,top_salary\nengineering,")
        );
    }
}
