//! Test fixtures: a registry store on a fresh SQLite file or a fresh PostgreSQL database per test
//! (the databases come from `relayguard_testkit::db`).

#![allow(dead_code)]

use relayguard_registry::Store;
pub use relayguard_testkit::db::Kind;
use relayguard_testkit::db::TestDb;

/// A store plus the database it lives in.
pub struct TestStore {
    pub store: Store,
    pub url: String,
    _db: TestDb,
}

pub async fn open(kind: Kind) -> TestStore {
    let db = TestDb::new(kind).await;
    let store = Store::open(&db.url).await.unwrap();
    TestStore {
        store,
        url: db.url.clone(),
        _db: db,
    }
}

pub async fn sqlite() -> TestStore {
    open(Kind::Sqlite).await
}

pub async fn postgres() -> TestStore {
    open(Kind::Postgres).await
}
