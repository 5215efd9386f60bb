//! `crm-router run`: the daemon, until SIGTERM or Ctrl-C.

use std::process::ExitCode;

use tokio_util::sync::CancellationToken;

use crm_router::app::Application;

use super::{init_tracing, Global, SourceArgs};

/// Runs the daemon; each reload reads the config file again.
pub async fn run(global: &Global, args: SourceArgs) -> anyhow::Result<ExitCode> {
    let source = global.settings_source(args)?;
    let settings = source.resolve()?;
    init_tracing(settings.log_format);
    let application = Application::build(settings, Some(source)).await?;
    let shutdown = CancellationToken::new();
    tokio::spawn(shutdown_signal(shutdown.clone()));
    application.run(shutdown).await?;
    Ok(ExitCode::SUCCESS)
}

async fn shutdown_signal(token: CancellationToken) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut terminate = signal(SignalKind::terminate()).expect("SIGTERM handler installs");
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = terminate.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = tokio::signal::ctrl_c().await;
    tracing::info!("shutting down: finishing the batch in flight");
    token.cancel();
}
