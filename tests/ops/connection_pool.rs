//! Our pooled PostgreSQL connections (`Store::connect_with`, with the vendored
//! sqlx-core, which flushes a connection going back to the pool instead of
//! pinging it: vendor/README.md). Whatever its last user left behind, a
//! connection is clean when it is used again, and one that died while idle
//! is found before anyone's query fails on it.

use std::time::Duration;

use facerec_store::Store;
use sqlx::Connection;

fn database_url() -> String {
    std::env::var("DATABASE_URL").expect("DATABASE_URL (make test sets it)")
}

async fn backend_pid(store: &Store) -> i32 {
    sqlx::query_scalar("SELECT pg_backend_pid()").fetch_one(store.pool()).await.unwrap()
}

#[tokio::test]
async fn a_pooled_connection_is_clean_after_a_dropped_transaction_or_query_and_replaced_once_dead() {
    // One connection: every query below runs in the same session.
    let store = Store::connect_with(&database_url(), 1, Duration::from_secs(10)).await.unwrap();
    let pool = store.pool();
    sqlx::query("CREATE TEMP TABLE probe (x int)").execute(pool).await.unwrap();
    let session = backend_pid(&store).await;
    let mut admin = sqlx::PgConnection::connect(&database_url()).await.unwrap();

    // A transaction dropped without commit: its ROLLBACK reaches PostgreSQL
    // as the connection goes back to the pool, not only with its next query
    // (the lock it held is free while the pool sits idle).
    let mut tx = pool.begin().await.unwrap();
    sqlx::query("SELECT pg_advisory_xact_lock(4242)").execute(&mut *tx).await.unwrap();
    sqlx::query("INSERT INTO probe VALUES (1)").execute(&mut *tx).await.unwrap();
    drop(tx);
    let deadline = std::time::Instant::now() + Duration::from_secs(3);
    loop {
        let free: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock(4242)").fetch_one(&mut admin).await.unwrap();
        if free {
            sqlx::query("SELECT pg_advisory_unlock(4242)").execute(&mut admin).await.unwrap();
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the dropped transaction still holds its lock");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (rows, in_transaction): (i64, bool) =
        sqlx::query_as("SELECT (SELECT count(*) FROM probe), pg_current_xact_id_if_assigned() IS NOT NULL")
            .fetch_one(pool)
            .await
            .unwrap();
    assert_eq!((rows, in_transaction), (0, false), "the dropped transaction was rolled back, not still open");

    // A query dropped while PostgreSQL still runs it: its answer is read and
    // discarded before the connection is used again, not taken for the next one's.
    let slow = sqlx::query_scalar::<_, i32>("SELECT 7 FROM pg_sleep(0.3)").fetch_one(pool);
    assert!(tokio::time::timeout(Duration::from_millis(50), slow).await.is_err(), "the slow query was dropped");
    let answer: i32 = sqlx::query_scalar("SELECT 11").fetch_one(pool).await.unwrap();
    assert_eq!(answer, 11);
    assert_eq!(backend_pid(&store).await, session, "the same connection, still usable");

    // The session killed while the connection idles in the pool (as by a
    // PostgreSQL restart): after a second idle it is pinged before use, and
    // replaced, so the next query runs on a new session instead of failing.
    let killed: bool =
        sqlx::query_scalar("SELECT pg_terminate_backend($1)").bind(session).fetch_one(&mut admin).await.unwrap();
    assert!(killed);
    // Idling past the pool's one second before a ping is the point.
    tokio::time::sleep(Duration::from_millis(1_300)).await;
    let replaced = backend_pid(&store).await;
    assert_ne!(replaced, session, "a new session");
    admin.close().await.unwrap();
}
