//! Shared by the PostgreSQL tests: the rig's server, one fresh database per test.
#![allow(dead_code, unreachable_pub)]

use std::sync::atomic::{AtomicU32, Ordering};

use deploykit_core::Secret;
use sqlx::{AssertSqlSafe, ConnectOptions, Connection};

/// The rig's superuser URL; `None` (with a printed reason) outside CI when the
/// rig did not run. Under `CI` a missing server fails the test.
pub fn rig_url() -> Option<String> {
    match std::env::var("DEPLOYKIT_RIG_PG_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            if std::env::var_os("CI").is_some() {
                panic!("DEPLOYKIT_RIG_PG_URL is not set but CI is: run the tests through script/test, which starts PostgreSQL");
            }
            eprintln!("skipped: DEPLOYKIT_RIG_PG_URL not set (run through script/test to start PostgreSQL)");
            None
        }
    }
}

/// A database of its own for one test, so tests run in parallel.
pub struct TestDb {
    pub name: String,
    pub url: Secret,
    pub admin_url: String,
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

impl TestDb {
    pub async fn create(label: &str) -> Option<TestDb> {
        let admin_url = rig_url()?;
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        let name = format!(
            "dk_{label}_{}_{}_{nanos}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::SeqCst)
        );
        let mut conn = sqlx::postgres::PgConnection::connect(&admin_url)
            .await
            .unwrap();
        sqlx::raw_sql(AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut conn)
            .await
            .unwrap();
        conn.close().await.unwrap();
        let (base, _) = admin_url.rsplit_once('/').unwrap();
        Some(TestDb {
            url: Secret::new(format!("{base}/{name}")),
            name,
            admin_url,
        })
    }

    pub async fn conn(&self) -> sqlx::postgres::PgConnection {
        self.url
            .expose()
            .parse::<sqlx::postgres::PgConnectOptions>()
            .unwrap()
            .connect()
            .await
            .unwrap()
    }

    pub async fn exec(&self, sql: &str) {
        let mut c = self.conn().await;
        sqlx::raw_sql(AssertSqlSafe(sql.to_string()))
            .execute(&mut c)
            .await
            .unwrap();
        c.close().await.unwrap();
    }

    pub async fn scalar_i64(&self, sql: &str) -> i64 {
        let mut c = self.conn().await;
        let v: i64 = sqlx::query_scalar(AssertSqlSafe(sql.to_string()))
            .fetch_one(&mut c)
            .await
            .unwrap();
        c.close().await.unwrap();
        v
    }

    /// `pg_dump --schema-only` of the database, without history tables and
    /// without the comment lines that carry volatile details.
    pub fn schema(&self) -> String {
        let (user_pass, rest) = self.url.expose()["postgres://".len()..]
            .split_once('@')
            .unwrap();
        let (user, pass) = user_pass.split_once(':').unwrap();
        let (hostport, db) = rest.split_once('/').unwrap();
        let (host, port) = hostport.split_once(':').unwrap();
        let out = std::process::Command::new("pg_dump")
            .args([
                "--schema-only",
                "--no-owner",
                "--exclude-table=deploykit_migrations",
                "--exclude-table=_sqlx_migrations",
                "--exclude-schema=supabase_migrations",
            ])
            .env("PGHOST", host)
            .env("PGPORT", port)
            .env("PGUSER", user)
            .env("PGPASSWORD", pass)
            .env("PGDATABASE", db)
            .output()
            .expect("pg_dump runs");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .filter(|l| {
                !l.starts_with("--")
                    && !l.starts_with("\\restrict")
                    && !l.starts_with("\\unrestrict")
            })
            .collect::<Vec<_>>()
            .join("\n")
    }
}
