//! The route files and schemas compiled into the binary, used when `./routes` / `./schemas`
//! do not exist and written out by `crm-router init`.

use include_dir::{include_dir, Dir};

/// `routes/` of the source tree.
pub static ROUTES: Dir<'static> = include_dir!("$CARGO_MANIFEST_DIR/routes");

/// `schemas/` of the source tree.
pub static SCHEMAS: Dir<'static> = include_dir!("$CARGO_MANIFEST_DIR/schemas");
