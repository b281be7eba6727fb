//! `desk-admins …`: the administrators the security team lets sign in at the registration desk
//! without a registration or network block of their own.

use std::io::Write;

use clap::Subcommand;
use relayguard_registry::Store;
use relayguard_registry::store::DeskAdmin;

/// `desk-admins …`
#[derive(Debug, Subcommand)]
pub enum DeskAdminsCommand {
    /// Let an administrator sign in at the desk (or change their name or language).
    Add {
        /// Their e-mail address (sign-in links go there).
        email: String,
        /// Their name.
        #[arg(long, default_value = "")]
        name: String,
        /// The language of their mails: en or ja.
        #[arg(long)]
        lang: Option<String>,
        /// Who adds them (written to the audit log).
        #[arg(long)]
        by: String,
    },
    /// List them.
    List,
    /// Take the right away (their registrations and blocks, if any, still let them in).
    Remove {
        /// Their e-mail address.
        email: String,
        /// Who removes them (written to the audit log).
        #[arg(long)]
        by: String,
    },
}

/// Runs a `desk-admins` command.
pub async fn run(
    store: &Store,
    cmd: DeskAdminsCommand,
    out: &mut (dyn Write + Send),
) -> anyhow::Result<()> {
    match cmd {
        DeskAdminsCommand::Add {
            email,
            name,
            lang,
            by,
        } => {
            let lang = lang.as_deref().map(str::parse).transpose()?;
            let a = store
                .add_desk_admin(
                    &DeskAdmin {
                        email,
                        name,
                        lang,
                        added_by: String::new(),
                        added_at: 0,
                    },
                    &by,
                )
                .await?;
            writeln!(out, "added {}", a.email)?;
        }
        DeskAdminsCommand::List => {
            for a in store.list_desk_admins().await? {
                let lang = a.lang.map_or("-", |l| l.as_str());
                writeln!(
                    out,
                    "{}\t{}\t{lang}\tadded by {}",
                    a.email, a.name, a.added_by
                )?;
            }
        }
        DeskAdminsCommand::Remove { email, by } => {
            if !store.remove_desk_admin(&email, &by).await? {
                anyhow::bail!("{email} is not a desk administrator");
            }
            writeln!(out, "removed {}", email.trim().to_ascii_lowercase())?;
        }
    }
    Ok(())
}
