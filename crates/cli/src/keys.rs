//! `facerec keys create|list|delete`: API keys, through the api's `/v1/keys`
//! (with the master key, or a key holding `keys.manage`).

use std::time::Duration;

use clap::{Args, Subcommand};
use reqwest::Method;
use serde_json::{Value, json};

use crate::ApiArgs;
use crate::client::ApiClient;

#[derive(Debug, Clone, Args)]
pub struct KeysArgs {
    #[command(subcommand)]
    pub command: KeysCommand,
    #[command(flatten)]
    pub connection: ApiArgs,
}

#[derive(Debug, Clone, Subcommand)]
pub enum KeysCommand {
    /// Create a key; prints it (as JSON) once: it cannot be shown again.
    Create {
        /// What the key is for.
        #[arg(long)]
        name: String,
        /// Comma-separated actions: register, recognize, verify, embed, jobs.read, jobs.cancel,
        /// gallery.read, gallery.write, batches.create, batches.read, keys.manage, or *.
        #[arg(long, value_delimiter = ',', required = true)]
        actions: Vec<String>,
        /// Comma-separated collections: names, prefixes ending in `*` (`acme-*`), or `*`.
        #[arg(long, value_delimiter = ',', required = true)]
        collections: Vec<String>,
        /// When the key stops working (RFC 3339).
        #[arg(long)]
        expires_at: Option<String>,
    },
    /// List keys, one per line: id, name, prefix, actions, collections, expiry.
    List,
    /// Delete a key: it stops working at once.
    Delete {
        /// The key's id.
        id: String,
    },
}

pub async fn run(mut args: KeysArgs) -> anyhow::Result<()> {
    // On the api's own machine the master key is usually in the environment already.
    if args.connection.api_key.is_none()
        && let Ok(master) = std::env::var("FACEREC_MASTER_KEY")
    {
        args.connection.api_key = Some(master.into());
    }
    let client = ApiClient::new(&args.connection, 1, Duration::from_secs(10))?;
    match args.command {
        KeysCommand::Create { name, actions, collections, expires_at } => {
            let mut body = json!({"name": name, "actions": actions, "collections": collections});
            if let Some(expires_at) = expires_at {
                body["expires_at"] = json!(expires_at);
            }
            let created = client.call(Method::POST, "/v1/keys", Some(&body)).await?.unwrap_or_default();
            println!("{}", serde_json::to_string_pretty(&created)?);
            eprintln!("the key is shown only now: keep it somewhere safe");
            // The api says so when it runs open: the key made is then no protection.
            if let Some(warning) = created["warning"].as_str() {
                eprintln!("warning: {warning}");
            }
        }
        KeysCommand::List => {
            let mut cursor: Option<String> = None;
            loop {
                let path = match &cursor {
                    Some(c) => format!("/v1/keys?limit=100&cursor={c}"),
                    None => "/v1/keys?limit=100".to_owned(),
                };
                let page = client.call(Method::GET, &path, None).await?.unwrap_or_default();
                for key in page["keys"].as_array().into_iter().flatten() {
                    println!("{}", line(key));
                }
                match page["next_cursor"].as_str() {
                    Some(next) => cursor = Some(next.to_owned()),
                    None => break,
                }
            }
        }
        KeysCommand::Delete { id } => {
            if id.parse::<uuid::Uuid>().is_err() {
                anyhow::bail!("{id:?} is not a key id (a UUID)");
            }
            client.call(Method::DELETE, &format!("/v1/keys/{id}"), None).await?;
            eprintln!("deleted key {id}");
        }
    }
    Ok(())
}

fn line(key: &Value) -> String {
    let list = |v: &Value| v.as_array().into_iter().flatten().filter_map(Value::as_str).collect::<Vec<_>>().join(",");
    format!(
        "{}\t{}\t{}\t{}\t{}\t{}",
        key["id"].as_str().unwrap_or_default(),
        key["name"].as_str().unwrap_or_default(),
        key["key_prefix"].as_str().unwrap_or_default(),
        list(&key["actions"]),
        list(&key["collections"]),
        key["expires_at"].as_str().unwrap_or("never"),
    )
}
