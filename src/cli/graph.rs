//! `crm-router graph`: how the routes connect, as Mermaid or DOT.

use std::process::ExitCode;

use crm_router::route::graph::{self, GraphFormat};

use super::{loaded_routes, Global, SourceArgs};

/// Prints the graph of the routes in `format`.
pub fn run(global: &Global, format: GraphFormat, args: SourceArgs) -> anyhow::Result<ExitCode> {
    let settings = global.settings(args)?;
    let Some(set) = loaded_routes(&settings) else {
        return Ok(ExitCode::FAILURE);
    };
    print!("{}", graph::render(&set, format));
    Ok(ExitCode::SUCCESS)
}
