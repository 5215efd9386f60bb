//! `crm-router user create`: a user of the bundled CRM, such as the first ADMIN.

use std::process::ExitCode;

use anyhow::Context;
use clap::Subcommand;

use crm_router::app::open_store;
use crm_router::auth::Role;
use crm_router::config::Settings;
use crm_router::crm::users;

use super::{init_tracing_quiet, Global, SourceArgs};

/// `crm-router user …`.
#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Create a user, reading the password from stdin (bootstraps the first ADMIN).
    Create {
        /// Email address.
        #[arg(long)]
        email: String,
        /// Display name.
        #[arg(long)]
        name: String,
        /// USER, SALES, COMPLIANCE, MANAGER or ADMIN.
        #[arg(long, default_value = "USER")]
        role: Role,
        #[command(flatten)]
        source: SourceArgs,
    },
}

/// Runs a `user` subcommand.
pub async fn run(global: &Global, command: UserCommand) -> anyhow::Result<ExitCode> {
    init_tracing_quiet();
    match command {
        UserCommand::Create {
            email,
            name,
            role,
            source,
        } => create_user(global.settings(source)?, email, name, role).await,
    }
}

/// The password: prompted without echo on a terminal, else the first line of stdin.
fn read_password() -> anyhow::Result<String> {
    use std::io::{BufRead, IsTerminal};
    if std::io::stdin().is_terminal() {
        return rpassword::prompt_password("Password: ").context("cannot read the password");
    }
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .context("cannot read the password from stdin")?;
    Ok(line.trim_end_matches(['\r', '\n']).to_owned())
}

async fn create_user(
    settings: Settings,
    email: String,
    name: String,
    role: Role,
) -> anyhow::Result<ExitCode> {
    let password = read_password()?;
    let store = open_store(&settings).await?;
    let (user, _published) = users::register(
        &store,
        users::Registration {
            email,
            password,
            name,
            role,
            manager_id: None,
        },
        None,
        None,
    )
    .await?;
    store.close().await;
    // A running daemon on this database picks USER_CREATED up from the log within a second.
    println!("created {} {} ({})", user.role, user.email, user.id);
    Ok(ExitCode::SUCCESS)
}
