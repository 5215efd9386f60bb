//! `crm-router import`: the original CRM's rows, from its PostgreSQL database or JSON lines.

use std::process::ExitCode;

use anyhow::Context;

use crm_router::app::open_store;

use super::{init_tracing_quiet, Global, SourceArgs};

/// Imports from `from` into the configured database; exit 1 when a row was refused.
pub async fn run(
    global: &Global,
    from: &str,
    on_error: crm_router::import::OnError,
    args: SourceArgs,
) -> anyhow::Result<ExitCode> {
    init_tracing_quiet();
    let settings = global.settings(args)?;
    use crm_router::import::{self, original::OriginalTable, source::Source};
    let source = Source::parse(from);
    let store = open_store(&settings).await?;
    // Drawn on a terminal only; piped, it stays silent and the summary says it all.
    let progress = indicatif::ProgressBar::new(0).with_style(
        indicatif::ProgressStyle::with_template(
            "{bar:40} {pos}/{len} rows ({per_sec}, {eta} left)",
        )
        .context("the progress bar's template")?,
    );
    let outcome = import::import(&store, &source, on_error, &progress).await;
    progress.finish_and_clear();
    store.close().await;
    let summary = outcome.with_context(|| format!("importing from {}", source.display()))?;
    println!("imported from {}:", source.display());
    for table in OriginalTable::ALL {
        if let Some(counts) = summary.counts.get(&table) {
            print!(
                "  {:<18} {} imported, {} already here, {} refused",
                table.name(),
                counts.imported,
                counts.present,
                counts.refused
            );
            if counts.merged > 0 {
                print!(
                    ", {} taken to be the user here with the same email",
                    counts.merged
                );
            }
            println!();
        }
    }
    const SHOWN: usize = 50;
    for refusal in summary.refusals.iter().take(SHOWN) {
        println!("refused: {refusal}");
    }
    if summary.refusals.len() > SHOWN {
        println!("… and {} more refused rows", summary.refusals.len() - SHOWN);
    }
    if summary.stopped {
        println!(
            "stopped at the first refused row (--on-error stop): nothing after it was imported"
        );
    }
    Ok(if summary.refusals.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
