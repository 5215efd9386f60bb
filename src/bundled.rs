//! The route files and schemas compiled into the binary, used when `./routes` / `./schemas`
//! do not exist and written out by `crm-router init`, and the example project of
//! `crm-router init --bare`.

use include_dir::{include_dir, Dir};

/// `routes/` of the source tree.
pub static ROUTES: Dir<'static> = include_dir!("$CARGO_MANIFEST_DIR/routes");

/// `schemas/` of the source tree.
pub static SCHEMAS: Dir<'static> = include_dir!("$CARGO_MANIFEST_DIR/schemas");

/// `examples/bare/`: the project `crm-router init --bare` writes, without the CRM.
pub static BARE: Dir<'static> = include_dir!("$CARGO_MANIFEST_DIR/examples/bare");

#[cfg(test)]
mod tests {
    use super::*;

    /// The old CRM services' dotted event names that mean one of ours with the same data
    /// (docs/operations.md, "Event names of the old services"): (topic, alias, type).
    const ALIASES: [(&str, &str, &str); 5] = [
        ("user.events", "user.created", "USER_CREATED"),
        ("user.events", "user.updated", "USER_UPDATED"),
        ("user.events", "user.deleted", "USER_DELETED"),
        ("user.events", "user.login", "USER_LOGGED_IN"),
        ("customer.events", "customer.deleted", "CUSTOMER_DELETED"),
    ];

    fn schema(topic: &str, event_type: &str) -> serde_json::Value {
        let path = format!("{topic}/{event_type}.json");
        let file = SCHEMAS
            .get_file(&path)
            .unwrap_or_else(|| panic!("schemas/{path} is bundled"));
        let mut schema: serde_json::Value =
            serde_json::from_str(file.contents_utf8().unwrap()).unwrap();
        for name in ["$id", "title", "description"] {
            schema.as_object_mut().unwrap().remove(name);
        }
        schema
    }

    #[test]
    fn an_alias_is_checked_by_its_types_schema() {
        for (topic, alias, event_type) in ALIASES {
            assert_eq!(
                schema(topic, alias),
                schema(topic, event_type),
                "schemas/{topic}/{alias}.json must equal {event_type}.json but for $id, title and description"
            );
        }
    }

    #[test]
    fn every_bundled_route_on_a_type_also_runs_on_its_alias() {
        let mut checked = 0;
        for file in ROUTES.files() {
            let text = file.contents_utf8().unwrap();
            let routes: serde_yaml::Value = serde_yaml::from_str(text).unwrap();
            for route in routes["routes"].as_sequence().unwrap() {
                let on = &route["on"];
                let types: Vec<&str> = match &on["type"] {
                    serde_yaml::Value::String(one) => vec![one.as_str()],
                    serde_yaml::Value::Sequence(many) => {
                        many.iter().filter_map(|name| name.as_str()).collect()
                    }
                    _ => continue,
                };
                for (topic, alias, event_type) in ALIASES {
                    if on["topic"].as_str() == Some(topic) && types.contains(&event_type) {
                        assert!(
                            types.contains(&alias),
                            "route {:?} runs on {event_type} but not on {alias}",
                            route["name"]
                        );
                        checked += 1;
                    }
                }
            }
        }
        assert!(checked >= 1, "user-creates-customer runs on USER_CREATED");
    }
}
