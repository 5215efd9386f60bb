//! User administration at the original CRM's `/api/auth/users`: who may look users up, an
//! ADMIN's changes taking effect at once, and a deletion that ends the user's sessions and
//! cascades to what they own.

use serde_json::json;
use test_case::test_case;

use super::{id, Crm};
use crate::support::{count, drained, Backend};

#[test_case(Backend::Sqlite ; "sqlite")]
#[test_case(Backend::Postgres ; "postgres")]
#[tokio::test]
async fn admins_manage_users_managers_see_their_team_and_others_nobody(backend: Backend) {
    let Some(crm) = Crm::start(backend).await else {
        return;
    };
    let admin = crm.admin().await;
    let manager = crm
        .register(Some(&admin), "manager@example.com", "MANAGER", None)
        .await;
    let member = crm
        .register(Some(&admin), "member@example.com", "SALES", Some(&manager))
        .await;
    let outsider = crm
        .register(None, "outsider@example.com", "SALES", None)
        .await;

    let everyone = crm
        .get(&admin.token, "/api/auth/users?limit=2&page=1")
        .await;
    assert_eq!(
        (everyone.status, everyone.total()),
        (200, 4),
        "{}",
        everyone.body
    );
    assert_eq!(everyone.body["pagination"]["totalPages"], 2);
    let team = crm.get(&manager.token, "/api/auth/users").await;
    let mut ids = team.ids();
    ids.sort();
    let mut expected = vec![manager.id.clone(), member.id.clone()];
    expected.sort();
    assert_eq!(ids, expected, "{}", team.body);
    assert_eq!(
        crm.get(&manager.token, &format!("/api/auth/users/{}", outsider.id))
            .await
            .outcome(),
        (404, "not_found")
    );
    for path in [
        "/api/auth/users".to_owned(),
        format!("/api/auth/users/{}", member.id),
    ] {
        assert_eq!(
            crm.get(&outsider.token, &path).await.outcome(),
            (403, "forbidden"),
            "{path}"
        );
    }
    let by_manager = crm
        .put(
            &manager.token,
            &format!("/api/auth/users/{}", member.id),
            json!({"role": "ADMIN"}),
        )
        .await;
    assert_eq!(
        by_manager.outcome(),
        (403, "forbidden"),
        "{}",
        by_manager.body
    );

    // A role change applies to the user's next request, with the token they already hold.
    assert_eq!(
        crm.get(&outsider.token, "/api/auth/users").await.status,
        403
    );
    let promoted = crm
        .put(
            &admin.token,
            &format!("/api/auth/users/{}", outsider.id),
            json!({"role": "COMPLIANCE", "name": "Auditor"}),
        )
        .await;
    assert_eq!(promoted.status, 200, "{}", promoted.body);
    assert_eq!(promoted.body["data"]["role"], "COMPLIANCE");
    assert_eq!(crm.get(&outsider.token, "/api/auth/users").await.total(), 4);
    let not_a_manager = crm
        .put(
            &admin.token,
            &format!("/api/auth/users/{}", member.id),
            json!({"managerId": outsider.id}),
        )
        .await;
    assert_eq!(
        not_a_manager.outcome(),
        (400, "bad_request"),
        "{}",
        not_a_manager.body
    );
    assert_eq!(not_a_manager.fields(), ["managerId"]);
    drained(&crm.db).await;
    assert_eq!(
        count(
            &crm.db,
            "SELECT COUNT(*) FROM event_log WHERE event_type = 'USER_UPDATED'"
        )
        .await,
        1
    );
}

#[test_case(Backend::Sqlite ; "sqlite")]
#[test_case(Backend::Postgres ; "postgres")]
#[tokio::test]
async fn a_deleted_user_is_signed_out_at_once_and_what_they_own_goes(backend: Backend) {
    let Some(crm) = Crm::start(backend).await else {
        return;
    };
    let admin = crm.admin().await;
    let leaver = crm
        .register(None, "leaver@example.com", "SALES", None)
        .await;
    let customer = id(&crm
        .created(&leaver.token, "/api/customers", json!({"name": "Theirs"}))
        .await);
    drained(&crm.db).await;

    let own = crm
        .call(
            reqwest::Method::DELETE,
            &format!("/api/auth/users/{}", admin.id),
            Some(&admin.token),
            None,
        )
        .await;
    assert_eq!(own.outcome(), (409, "conflict"), "{}", own.body);
    let deleted = crm
        .delete(&admin.token, &format!("/api/auth/users/{}", leaver.id))
        .await;
    assert_eq!(deleted.status, 204, "{}", deleted.body);
    assert_eq!(
        crm.get(&leaver.token, "/api/auth/me").await.outcome(),
        (401, "unauthorized")
    );
    let login = crm.login("leaver@example.com", super::PASSWORD).await;
    assert_eq!(login.outcome(), (401, "unauthorized"));
    assert_eq!(
        crm.get(&admin.token, &format!("/api/auth/users/{}", leaver.id))
            .await
            .outcome(),
        (404, "not_found")
    );
    // USER_DELETED took their customers (the one from sign-up too) and the customers' tasks
    // assigned to them.
    drained(&crm.db).await;
    assert_eq!(
        count(
            &crm.db,
            &format!(
                "SELECT COUNT(*) FROM customers WHERE owner_id = '{}' AND deleted_at IS NOT NULL",
                leaver.id
            )
        )
        .await,
        2
    );
    assert_eq!(
        crm.get(&admin.token, &format!("/api/customers/{customer}"))
            .await
            .outcome(),
        (404, "not_found")
    );
    assert_eq!(
        count(
            &crm.db,
            "SELECT COUNT(*) FROM event_log WHERE event_type = 'USER_DELETED'"
        )
        .await,
        1
    );
}

#[test_case(Backend::Sqlite ; "sqlite")]
#[test_case(Backend::Postgres ; "postgres")]
#[tokio::test]
async fn a_deactivated_user_is_signed_out_until_reactivated_and_an_admin_always_remains(
    backend: Backend,
) {
    let Some(crm) = Crm::start(backend).await else {
        return;
    };
    let admin = crm.admin().await;
    let member = crm
        .register(None, "member@example.com", "SALES", None)
        .await;
    let path = format!("/api/auth/users/{}", admin.id);

    // The only ADMIN can neither give up the role nor switch themselves off.
    for change in [json!({"role": "MANAGER"}), json!({"active": false})] {
        let refused = crm.put(&admin.token, &path, change.clone()).await;
        assert_eq!(
            refused.outcome(),
            (409, "conflict"),
            "{change}: {}",
            refused.body
        );
    }
    assert_eq!(
        crm.get(&admin.token, "/api/auth/me").await.body["data"]["role"],
        "ADMIN"
    );

    let member_path = format!("/api/auth/users/{}", member.id);
    let deactivated = crm
        .put(&admin.token, &member_path, json!({"active": false}))
        .await;
    assert_eq!(deactivated.status, 200, "{}", deactivated.body);
    assert_eq!(deactivated.body["data"]["active"], false);
    let me = crm.get(&member.token, "/api/auth/me").await;
    assert_eq!(me.outcome(), (401, "unauthorized"), "{}", me.body);
    let login = crm.login(&member.email, super::PASSWORD).await;
    assert_eq!(login.outcome(), (403, "forbidden"), "{}", login.body);
    assert!(login.message().contains("deactivated"), "{}", login.body);
    // A wrong password learns nothing about the account.
    let guess = crm.login(&member.email, "wrong password entirely").await;
    assert_eq!(guess.outcome(), (401, "unauthorized"));
    let listed = crm.get(&admin.token, "/api/auth/users").await;
    let row = listed.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|row| row["id"] == member.id.as_str())
        .cloned()
        .unwrap_or_else(|| panic!("deactivated users stay listed: {}", listed.body));
    assert_eq!(row["active"], false);

    let reactivated = crm
        .put(&admin.token, &member_path, json!({"active": true}))
        .await;
    assert_eq!(
        reactivated.body["data"]["active"], true,
        "{}",
        reactivated.body
    );
    let login = crm.login(&member.email, super::PASSWORD).await;
    assert_eq!(login.status, 200, "{}", login.body);

    // With a second ADMIN, the first may step down.
    let promoted = crm
        .put(&admin.token, &member_path, json!({"role": "ADMIN"}))
        .await;
    assert_eq!(promoted.status, 200, "{}", promoted.body);
    let stepped_down = crm
        .put(&admin.token, &path, json!({"role": "MANAGER"}))
        .await;
    assert_eq!(stepped_down.status, 200, "{}", stepped_down.body);
    assert_eq!(stepped_down.body["data"]["role"], "MANAGER");
}

#[test_case(Backend::Sqlite ; "sqlite")]
#[test_case(Backend::Postgres ; "postgres")]
#[tokio::test]
async fn two_admins_demoting_each_other_at_once_leave_one_admin(backend: Backend) {
    let Some(crm) = Crm::start(backend).await else {
        return;
    };
    let first = crm.admin().await;
    let second = crm
        .register(Some(&first), "second@example.com", "ADMIN", None)
        .await;
    // A deactivated ADMIN does not count as the one who remains.
    let third = crm
        .register(Some(&first), "third@example.com", "ADMIN", None)
        .await;
    let off = crm
        .put(
            &first.token,
            &format!("/api/auth/users/{}", third.id),
            json!({"active": false}),
        )
        .await;
    assert_eq!(off.status, 200, "{}", off.body);
    for _ in 0..3 {
        let (second_path, first_path) = (
            format!("/api/auth/users/{}", second.id),
            format!("/api/auth/users/{}", first.id),
        );
        let demote_second = crm.put(&first.token, &second_path, json!({"role": "MANAGER"}));
        let demote_first = crm.put(&second.token, &first_path, json!({"role": "MANAGER"}));
        let (one, other) = tokio::join!(demote_second, demote_first);
        // The loser is refused as the last ADMIN (409), or, if its request read its role
        // after the winner's commit, as no ADMIN any more (403).
        let mut outcomes = [one.status, other.status];
        outcomes.sort_unstable();
        assert!(
            outcomes == [200, 409] || outcomes == [200, 403],
            "{outcomes:?}: {} / {}",
            one.body,
            other.body
        );
        let admins = count(
            &crm.db,
            "SELECT COUNT(*) FROM users WHERE role = 'ADMIN' AND active <> 0 \
             AND deleted_at IS NULL",
        )
        .await;
        assert_eq!(admins, 1);
        // Whoever remains makes the other ADMIN again for the next round.
        let (remaining, demoted) = if one.status == 200 {
            (&first, &second)
        } else {
            (&second, &first)
        };
        let restored = crm
            .put(
                &remaining.token,
                &format!("/api/auth/users/{}", demoted.id),
                json!({"role": "ADMIN"}),
            )
            .await;
        assert_eq!(restored.status, 200, "{}", restored.body);
    }
}
