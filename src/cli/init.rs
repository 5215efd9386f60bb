//! `crm-router init [--bare] DIR`: a project to edit.

use std::path::Path;
use std::process::ExitCode;

use crm_router::init::{self, Template};

/// Writes the project and says what to do next.
pub fn run(dir: &Path, force: bool, bare: bool) -> anyhow::Result<ExitCode> {
    let template = if bare { Template::Bare } else { Template::Crm };
    for path in init::init(dir, template, force)? {
        println!("wrote {}", path.display());
    }
    println!(
        "next: cd {} && crm-router check && crm-router run",
        dir.display()
    );
    if !bare {
        println!("(crm-router init --bare starts a project without the CRM)");
    }
    Ok(ExitCode::SUCCESS)
}
