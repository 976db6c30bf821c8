//! A fresh Postgres database per test (zero2prod's `configure_database`, plus the drop).

use sqlx::postgres::PgPoolOptions;
use sqlx::{AssertSqlSafe, Executor, PgPool};

use crate::{ensure_stack, unique_name};

/// A database that exists for one test: created with a random name, dropped on drop.
#[derive(Debug)]
pub struct TestDatabase {
    pub name: String,
    /// `postgres://.../<name>`: what the service under test gets as `DATABASE_URL`.
    pub url: String,
    server: String,
}

impl TestDatabase {
    /// Creates an empty database. The service under test runs its own migrations into it.
    pub async fn create() -> Self {
        Self::create_on(&ensure_stack().postgres_server).await
    }

    /// Creates an empty database on the Postgres server at `server`
    /// (`postgres://user:pass@host:port`, no database name), without asking for the rest
    /// of the stack: the drills need a scratch database but their own Kafka cluster.
    pub async fn create_on(server: &str) -> Self {
        let server = server.to_owned();
        let name = unique_name("test").replace('-', "_");
        let admin = admin_pool(&server).await;
        admin
            .execute(AssertSqlSafe(format!(r#"CREATE DATABASE "{name}""#)))
            .await
            .unwrap_or_else(|e| panic!("creating database {name}: {e}"));
        admin.close().await;
        Self {
            url: format!("{server}/{name}"),
            name,
            server,
        }
    }

    /// A pool on the test database, for assertions.
    pub async fn pool(&self) -> PgPool {
        PgPoolOptions::new()
            .max_connections(4)
            .connect(&self.url)
            .await
            .unwrap_or_else(|e| panic!("connecting to {}: {e}", self.name))
    }
}

async fn admin_pool(server: &str) -> PgPool {
    PgPoolOptions::new()
        .max_connections(1)
        .connect(&format!("{server}/postgres"))
        .await
        .unwrap_or_else(|e| panic!("connecting to the test Postgres server: {e}"))
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        // Drop runs outside async; use a small runtime on a thread of its own so this
        // works whether or not the test's runtime is still alive. FORCE closes the
        // connections the service under test may still hold.
        let server = self.server.clone();
        let name = self.name.clone();
        let dropped = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            rt.block_on(async {
                let admin = admin_pool(&server).await;
                let sql = format!(r#"DROP DATABASE IF EXISTS "{name}" WITH (FORCE)"#);
                let result = admin.execute(AssertSqlSafe(sql)).await;
                admin.close().await;
                result.ok()
            })
        })
        .join();
        if !matches!(dropped, Ok(Some(_))) {
            eprintln!("test-support: could not drop test database {}", self.name);
        }
    }
}
