//! `relayguard vantage`: marking vantage points external or internal in the registry.

use anyhow::Context;
use clap::{Args, Subcommand};
use relayguard_registry::Store;
use relayguard_registry::reconcile::Exposure;

/// `vantage …`
#[derive(Debug, Subcommand)]
pub enum VantageCommand {
    /// Mark a vantage point (the NAME sweeps and workers give with --vantage) as looking from
    /// outside the campus firewall or from inside it. Unmarked vantages count as internal.
    Set(SetArgs),
    /// List the marked vantage points.
    List,
}

/// `vantage set NAME --external|--internal`.
#[derive(Debug, Args)]
pub struct SetArgs {
    /// The vantage point's name.
    pub name: String,
    /// It sees what the Internet sees: an SMTP listener it reaches on a host that is not a
    /// registered mail-direct server opens `reachable-from-outside`, and an open relay it sees
    /// is critical.
    #[arg(
        long,
        conflicts_with = "internal",
        required_unless_present = "internal"
    )]
    pub external: bool,
    /// It sees what a campus machine sees: an open relay seen only from internal vantages is
    /// high rather than critical.
    #[arg(long)]
    pub internal: bool,
}

/// Runs a `vantage` subcommand against the registry at `database_url`.
pub async fn run(cmd: VantageCommand, database_url: &str) -> anyhow::Result<u8> {
    let store = Store::open(database_url).await.with_context(|| {
        format!(
            "opening registry {}",
            relayguard_registry::store::redact(database_url)
        )
    })?;
    match cmd {
        VantageCommand::Set(a) => {
            let exposure = if a.external {
                Exposure::External
            } else {
                Exposure::Internal
            };
            let v = store.set_vantage(&a.name, exposure).await?;
            println!("vantage {} is {}", v.name, v.exposure);
        }
        VantageCommand::List => {
            for v in store.list_vantages().await? {
                println!("{}\t{}", v.name, v.exposure);
            }
        }
    }
    Ok(0)
}
