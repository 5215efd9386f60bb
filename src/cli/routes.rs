//! `crm-router routes`: the routes that would be loaded, one line each.

use std::process::ExitCode;

use crm_router::route::trigger::TriggerKind;

use super::{loaded_routes, Global, SourceArgs};

/// Prints one line per route: trigger → actions.
pub fn run(global: &Global, args: SourceArgs) -> anyhow::Result<ExitCode> {
    let settings = global.settings(args)?;
    let Some(set) = loaded_routes(&settings) else {
        return Ok(ExitCode::FAILURE);
    };
    println!("# routes from {}", set.origin);
    for route in &set.routes {
        let actions: Vec<String> = route
            .steps
            .iter()
            .map(|step| step.action.summary())
            .collect();
        let trigger = match &route.trigger.kind {
            TriggerKind::Events { topic, types } => {
                format!("{} [{}]", topic.as_str(), types.names().join(", "))
            }
            TriggerKind::Schedule(schedule) => format!("schedule {:?}", schedule.as_str()),
        };
        println!("{}: {trigger} → {}", route.name, actions.join(", "));
    }
    Ok(ExitCode::SUCCESS)
}
