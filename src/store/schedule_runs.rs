//! When each scheduled route last ran (`schedule_runs`).
//!
//! The scheduler computes the next tick from the last one, so a restart does not run every
//! schedule again at once. It claims a tick with a compare-and-set inside the run's transaction,
//! so two daemons on one database never both run it: the loser's claim writes nothing and it
//! rolls back before running any action.

use std::collections::HashMap;

use super::db::{self, Conn, Pool};

use super::StoreError;

/// The last tick of every route that has run, by route name.
pub async fn last_ticks(pool: &Pool) -> Result<HashMap<String, String>, StoreError> {
    let rows = db::query("SELECT route, last_tick FROM schedule_runs")
        .fetch_all(pool)
        .await?;
    rows.iter()
        .map(|row| Ok((row.try_get("route")?, row.try_get("last_tick")?)))
        .collect::<Result<_, sqlx::Error>>()
        .map_err(StoreError::from)
}

/// Moves `route`'s last tick from `expected` (`None`: it never ran) to `tick`, inside the
/// caller's transaction. False when another process moved it first: the caller must roll back
/// and not run the route.
pub async fn claim(
    connection: &mut Conn<'_>,
    route: &str,
    expected: Option<&str>,
    tick: &str,
    ran_at: &str,
) -> Result<bool, sqlx::Error> {
    let claimed = match expected {
        Some(expected) => db::query(
            "UPDATE schedule_runs SET last_tick = $1, ran_at = $2 WHERE route = $3 AND last_tick = $4",
        )
        .bind(tick)
        .bind(ran_at)
        .bind(route)
        .bind(expected)
        .execute(connection)
        .await?,
        None => db::query(
            "INSERT INTO schedule_runs (route, last_tick, ran_at) VALUES ($1, $2, $3) \
             ON CONFLICT (route) DO NOTHING",
        )
        .bind(route)
        .bind(tick)
        .bind(ran_at)
        .execute(connection)
        .await?,
    };
    Ok(claimed.rows_affected() == 1)
}

/// Sets `route`'s last tick whatever it was: a manual run always runs, and counts as a run.
pub async fn record(
    connection: &mut Conn<'_>,
    route: &str,
    tick: &str,
    ran_at: &str,
) -> Result<(), sqlx::Error> {
    db::query(
        "INSERT INTO schedule_runs (route, last_tick, ran_at) VALUES ($1, $2, $3) \
         ON CONFLICT (route) DO UPDATE SET last_tick = excluded.last_tick, ran_at = excluded.ran_at",
    )
    .bind(route)
    .bind(tick)
    .bind(ran_at)
    .execute(connection)
    .await?;
    Ok(())
}
