//! `facerec migrate`: brings the database's schema up to this release's
//! migrations, as an upgrade's first step (the api and the workers also
//! apply them when they start; see docs/operations.md, "Upgrades").

use anyhow::Context;
use clap::Args;
use facerec_store::{DatabaseArgs, Store};

#[derive(Debug, Clone, Args)]
pub struct MigrateArgs {
    #[command(flatten)]
    pub database: DatabaseArgs,
}

pub async fn run(args: MigrateArgs) -> anyhow::Result<()> {
    let url = &args.database.url;
    let store = Store::connect(url.expose(), 1).await.with_context(|| format!("connecting to {url}"))?;
    let before = store.schema_version().await.context("reading the schema version")?;
    store.migrate().await.context("applying the migrations")?;
    let after = store.schema_version().await.context("reading the schema version")?;
    match before {
        Some(before) if before == after.unwrap_or_default() => println!("{url}: up to date at migration {before}"),
        _ => println!("{url}: migrated from {} to {}", version(before), version(after)),
    }
    Ok(())
}

fn version(v: Option<i64>) -> String {
    v.map_or_else(|| "an empty database".to_owned(), |v| v.to_string())
}
