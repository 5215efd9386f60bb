//! `crm-router check`: routes, templates, schemas, tables and columns, without running.

use std::process::ExitCode;

use super::{init_tracing_quiet, Global, SourceArgs};

/// Checks everything `run` would load; exit 1 with every problem listed.
pub async fn run(global: &Global, args: SourceArgs) -> anyhow::Result<ExitCode> {
    init_tracing_quiet();
    let settings = global.settings(args)?;
    let report = crm_router::check::check(&settings).await?;
    if report.diagnostics.is_empty() {
        println!(
            "ok: {} routes, {} schemas (routes: {}, schemas: {})",
            report.routes,
            report.schemas,
            settings.routes.describe(),
            settings.schemas.describe()
        );
        return Ok(ExitCode::SUCCESS);
    }
    for diagnostic in &report.diagnostics {
        println!("{diagnostic}");
    }
    eprintln!("{} problem(s) found", report.diagnostics.len());
    Ok(ExitCode::FAILURE)
}
