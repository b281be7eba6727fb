//! Fresh registry databases for tests: a SQLite file in a temp directory, or a database of its
//! own in a real PostgreSQL cluster.
//!
//! PostgreSQL is real: the first test that needs it starts a throwaway cluster (initdb + pg_ctl,
//! as the `postgres` user when run as root) on a free loopback port in a temp directory, shared by
//! the tests of the process; each test gets its own database. A watchdog stops the cluster and
//! removes its directory when the test process exits. Set `RELAYGUARD_TEST_PG_URL` (a superuser
//! URL without database name, e.g. `postgres://postgres@127.0.0.1:5432`) to use a running server.
//! Missing binaries fail the test with the install command: never a silent skip.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};

/// Which backend a test runs against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// An embedded SQLite file.
    Sqlite,
    /// A database in the shared PostgreSQL test cluster.
    Postgres,
}

/// A fresh, empty database: its URL, and what must live as long as it (the SQLite temp dir).
pub struct TestDb {
    /// The URL the registry opens (`sqlite://…` or `postgres://…`).
    pub url: String,
    _dir: Option<tempfile::TempDir>,
}

impl TestDb {
    /// A fresh database of `kind`.
    pub async fn new(kind: Kind) -> TestDb {
        match kind {
            Kind::Sqlite => {
                let dir = tempfile::tempdir().expect("a temp directory");
                let url = format!("sqlite://{}", dir.path().join("sub/registry.db").display());
                TestDb {
                    url,
                    _dir: Some(dir),
                }
            }
            Kind::Postgres => TestDb {
                url: fresh_postgres_database().await,
                _dir: None,
            },
        }
    }
}

/// Creates a database of its own in the shared cluster and returns its URL.
async fn fresh_postgres_database() -> String {
    let base = pg_base_url();
    static N: AtomicU32 = AtomicU32::new(0);
    let name = format!(
        "t_{}_{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    );
    sqlx::any::install_default_drivers();
    let mut conn = <sqlx::AnyConnection as sqlx::Connection>::connect(&format!("{base}/postgres"))
        .await
        .expect("connecting to the test cluster");
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut conn)
        .await
        .expect("creating a test database");
    format!("{base}/{name}")
}

/// The base URL of the shared test cluster (started on first use).
pub fn pg_base_url() -> String {
    static URL: OnceLock<String> = OnceLock::new();
    URL.get_or_init(|| {
        if let Ok(u) = std::env::var("RELAYGUARD_TEST_PG_URL") {
            return u.trim_end_matches('/').to_string();
        }
        start_cluster()
    })
    .clone()
}

fn pg_bin_dir() -> PathBuf {
    if let Ok(out) = Command::new("pg_config").arg("--bindir").output()
        && out.status.success()
    {
        let p = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        if p.join("initdb").exists() {
            return p;
        }
    }
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|d| {
            d.filter_map(std::result::Result::ok)
                .map(|e| e.path().join("bin"))
                .filter(|p| p.join("initdb").exists())
                .collect()
        })
        .unwrap_or_default();
    found.sort();
    found.pop().unwrap_or_else(|| {
        panic!(
            "PostgreSQL server binaries (initdb, pg_ctl) not found: install them with \
             `apt-get install -y postgresql` (or set RELAYGUARD_TEST_PG_URL to a running server)"
        )
    })
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// Runs a PostgreSQL binary, as the `postgres` user when we are root (initdb refuses root).
fn pg_cmd(bin: &Path, args: &[&str]) -> Command {
    if is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(bin).args(args);
        c
    } else {
        let mut c = Command::new(bin);
        c.args(args);
        c
    }
}

fn start_cluster() -> String {
    let bin = pg_bin_dir();
    let dir = tempfile::Builder::new()
        .prefix("relayguard-pg-")
        .tempdir()
        .unwrap()
        .keep();
    let data = dir.join("data");
    let data_s = data.to_str().unwrap().to_string();
    let dir_s = dir.to_str().unwrap().to_string();
    if is_root() {
        let ok = Command::new("chown")
            .args(["-R", "postgres:", &dir_s])
            .status()
            .unwrap()
            .success();
        assert!(
            ok,
            "chown of {dir_s} to postgres failed (does the postgres user exist? apt-get install -y postgresql)"
        );
    }
    let out = pg_cmd(
        &bin.join("initdb"),
        &[
            "-D",
            &data_s,
            "-A",
            "trust",
            "-U",
            "postgres",
            "--no-sync",
            "-E",
            "UTF8",
        ],
    )
    .output()
    .expect("running initdb");
    assert!(
        out.status.success(),
        "initdb failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let opts = format!(
        "-p {port} -k {dir_s} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200"
    );
    let log = format!("{dir_s}/log");
    let out = pg_cmd(
        &bin.join("pg_ctl"),
        &[
            "-D", &data_s, "-l", &log, "-o", &opts, "-w", "-t", "60", "start",
        ],
    )
    .output()
    .expect("running pg_ctl");
    assert!(
        out.status.success(),
        "pg_ctl start failed: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    // Watchdog: when this test process exits, stop the cluster and remove its directory.
    let pg_ctl = bin.join("pg_ctl");
    let stop = if is_root() {
        format!(
            "runuser -u postgres -- {} -D {data_s} -m immediate stop",
            pg_ctl.display()
        )
    } else {
        format!("{} -D {data_s} -m immediate stop", pg_ctl.display())
    };
    let script = format!(
        "while kill -0 {pid} 2>/dev/null; do sleep 1; done; {stop} >/dev/null 2>&1; rm -rf {dir_s}",
        pid = std::process::id()
    );
    // Deliberately never waited for: the watchdog must outlive this process.
    #[allow(clippy::zombie_processes)]
    Command::new("sh")
        .args(["-c", &script])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawning the cluster watchdog");
    format!("postgres://postgres@127.0.0.1:{port}")
}
