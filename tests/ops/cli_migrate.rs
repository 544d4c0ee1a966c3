//! `facerec migrate` as an operator runs it before an upgrade: an empty
//! database gets every migration, a current one is left alone, and a
//! connection error names the database without its password.

use std::process::Command;

use facerec_testkit::{TestDatabase, built_binary};

/// Runs `facerec migrate` with `DATABASE_URL`: success, stdout, stderr.
fn migrate(database_url: &str) -> (bool, String, String) {
    let output = Command::new(built_binary("facerec"))
        .arg("migrate")
        .env("DATABASE_URL", database_url)
        .output()
        .expect("the facerec binary (make test builds it)");
    let text = |b: Vec<u8>| String::from_utf8(b).unwrap();
    (output.status.success(), text(output.stdout), text(output.stderr))
}

/// The newest migration in the repository.
fn newest_migration() -> String {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations");
    let mut versions: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.split('_').next().map(str::to_owned))
        .collect();
    versions.sort();
    versions.pop().unwrap()
}

#[tokio::test]
async fn migrate_brings_an_empty_database_up_to_date_and_hides_the_password() {
    let db = TestDatabase::create().await.unwrap();
    db.store.pool().close().await;
    sqlx::raw_sql("DROP SCHEMA public CASCADE; CREATE SCHEMA public;").execute(&db.db).await.unwrap();

    let newest = newest_migration();
    let (ok, stdout, stderr) = migrate(&db.database_url);
    assert!(ok, "{stderr}");
    assert!(stdout.contains(&format!("migrated from an empty database to {newest}")), "{stdout}");
    let tables: i64 =
        sqlx::query_scalar("SELECT count(*) FROM pg_tables WHERE tablename IN ('jobs', 'faces', 'api_keys')")
            .fetch_one(&db.db)
            .await
            .unwrap();
    assert_eq!(tables, 3);

    let (ok, stdout, stderr) = migrate(&db.database_url);
    assert!(ok && stdout.contains(&format!("up to date at migration {newest}")), "{stdout}{stderr}");

    let (ok, stdout, stderr) = migrate("postgres://facerec:not-the-password-7f3a@127.0.0.1:1/nowhere");
    assert!(!ok, "{stdout}");
    assert!(stderr.contains("postgres://facerec:***@127.0.0.1:1/nowhere"), "{stderr}");
    assert!(!stderr.contains("not-the-password") && !stdout.contains("not-the-password"), "{stderr}");
    db.drop().await.unwrap();
}
