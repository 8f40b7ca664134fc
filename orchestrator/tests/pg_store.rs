//! The PostgreSQL job store against a real PostgreSQL server started here (Debian's
//! `postgresql` package: `initdb` into a temporary folder, run as the `postgres` user when the
//! test runs as root, since initdb refuses root; fsync off; 127.0.0.1 on a free port). It passes
//! the same conformance suite as the SQLite store, and two replicas' stores on one database
//! record a request once. Without the server binaries these tests show as ignored.
#![cfg(feature = "store-postgres")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use cdvm_orchestrator::store::{conformance, JobStore, PgStore};

/// A PostgreSQL server in a temporary folder, stopped when dropped.
struct PgServer {
    child: Child,
    url: String,
    _dir: tempfile::TempDir,
}

fn bin_dir() -> PathBuf {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .expect("/usr/lib/postgresql (apt install postgresql)")
        .flatten()
        .map(|e| e.path().join("bin"))
        .filter(|p| p.join("initdb").is_file())
        .collect();
    dirs.sort();
    dirs.pop().expect("a PostgreSQL server version")
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .map(|l| l.split_whitespace().nth(2) == Some("0"))
        })
        .unwrap_or(false)
}

/// `program args…`, as the `postgres` user when root.
fn as_pg(program: &Path) -> Command {
    if is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(program);
        c
    } else {
        Command::new(program)
    }
}

impl PgServer {
    fn start() -> Self {
        let bin = bin_dir();
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let sockets = dir.path().join("sock");
        std::fs::create_dir_all(&sockets).unwrap();
        if is_root() {
            let status = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(dir.path())
                .status()
                .unwrap();
            assert!(status.success(), "chown the server's folder to postgres");
        }
        let out = as_pg(&bin.join("initdb"))
            .arg("-D")
            .arg(&data)
            .args(["-A", "trust", "-U", "cdvm", "-E", "UTF8", "--no-sync"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "initdb: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = as_pg(&bin.join("postgres"))
            .arg("-D")
            .arg(&data)
            .arg("-p")
            .arg(port.to_string())
            .arg("-k")
            .arg(&sockets)
            .args(["-c", "listen_addresses=127.0.0.1", "-F"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        Self {
            child,
            url: format!("host=127.0.0.1 port={port} user=cdvm dbname=postgres"),
            _dir: dir,
        }
    }

    /// A store on this server, once it accepts connections.
    async fn store(&self) -> PgStore {
        let until = Instant::now() + Duration::from_secs(30);
        loop {
            match PgStore::connect(&self.url).await {
                Ok(s) => return s,
                Err(e) if Instant::now() < until => {
                    let _ = e;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => panic!("PostgreSQL did not come up: {e}"),
            }
        }
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
#[cfg_attr(
    not(postgres_available),
    ignore = "no PostgreSQL server binaries: apt install postgresql (.ci/run does)"
)]
async fn postgres_store_passes_the_conformance_suite() {
    let server = PgServer::start();
    let store = server.store().await;
    conformance::run(&store).await;
    drop(store);
    // Another connection (a restarted replica) reads the same.
    let again = server.store().await;
    assert_eq!(again.owed().await.unwrap().len(), 1);
    assert_eq!(again.unfinished().await.unwrap().len(), 2);
}

#[tokio::test]
#[cfg_attr(
    not(postgres_available),
    ignore = "no PostgreSQL server binaries: apt install postgresql (.ci/run does)"
)]
async fn two_replicas_record_a_request_once() {
    let server = PgServer::start();
    let (a, b) = (server.store().await, server.store().await);
    for n in 0..20u8 {
        let id = format!("{n:02x}").repeat(32);
        let (ra, rb) = tokio::join!(
            a.insert_accepted(&id, "user", 5970),
            b.insert_accepted(&id, "user", 5970)
        );
        let (ra, rb) = (ra.unwrap(), rb.unwrap());
        assert!(
            ra ^ rb,
            "request {n}: exactly one replica launches ({ra}, {rb})"
        );
        assert_eq!(a.history(&id).await.unwrap(), ["accepted"]);
    }
}
