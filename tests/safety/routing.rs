//! Role and expertise routing over the wire: a `to_roles` / `required_expertise`
//! publish reaches only the sessions whose HELLO declared a match, in the one fan-out
//! (the others' next frame is the unrouted publish after it); presence shows what each
//! session declared; `roles.<role>` rooms are joined only by sessions that declared the
//! role; a token's `declare_roles` bounds what its sessions may declare; `from_role`
//! must be a declared role.

use super::harness::{assert_error, reply_of, start, Raw, TestServer};
use hivebus::Config;
use serde_json::{json, Value};

const LIMITED: &str = "routing-limited-token-0123456789";

async fn agent(srv: &TestServer, roles: &[&str], expertise: &[&str], auth: Option<&str>) -> Raw {
    let mut r = srv.raw().await;
    let mut hello = json!({"role": "client", "capabilities": [], "roles": roles,
                           "expertise": expertise, "reports_to": "lead"});
    if let Some(a) = auth {
        hello["auth"] = a.into();
    }
    r.send(json!({"id": "h", "type": "HELLO", "payload": hello}))
        .await;
    let w = r.recv().await;
    assert_eq!(w["type"], "WELCOME", "{w}");
    r
}

fn config() -> Config {
    serde_json::from_value(json!({"auth": {"tokens": [
        {"token": LIMITED, "subject": "limited", "role": "client",
         "declare_roles": ["implementer"]},
    ]}}))
    .unwrap()
}

/// The payload `text` of the next MESSAGE `r` receives.
async fn next_text(r: &mut Raw) -> Value {
    let m = r.recv().await;
    assert_eq!(m["type"], "MESSAGE", "{m}");
    m["payload"]["text"].clone()
}

#[tokio::test]
async fn routed_publishes_reach_only_the_matching_sessions() {
    let srv = start(config()).await;
    let mut rust_reviewer = agent(&srv, &["reviewer"], &["rust"], None).await;
    let mut go_reviewer = agent(&srv, &["reviewer"], &["go"], None).await;
    let mut implementer = agent(&srv, &["implementer"], &["rust"], None).await;
    let mut bystander = agent(&srv, &[], &[], None).await;
    let mut lead = agent(&srv, &["general"], &[], None).await;
    for r in [
        &mut rust_reviewer,
        &mut go_reviewer,
        &mut implementer,
        &mut bystander,
        &mut lead,
    ] {
        r.join("bip-43:general").await;
    }
    let publish = |id: &str, payload: Value| json!({"id": id, "type": "MESSAGE", "room": "bip-43:general", "payload": payload});
    lead.send(publish(
        "p1",
        json!({"text": "reviewers", "to_roles": ["reviewer"]}),
    ))
    .await;
    reply_of(&lead.recv().await, "p1");
    lead.send(publish(
        "p2",
        json!({"text": "rust reviewers", "to_roles": ["reviewer"],
               "required_expertise": ["rust"], "from_role": "general"}),
    ))
    .await;
    reply_of(&lead.recv().await, "p2");
    lead.send(publish("p3", json!({"text": "everyone"}))).await;
    reply_of(&lead.recv().await, "p3");

    assert_eq!(next_text(&mut rust_reviewer).await, "reviewers");
    assert_eq!(next_text(&mut rust_reviewer).await, "rust reviewers");
    assert_eq!(next_text(&mut rust_reviewer).await, "everyone");
    assert_eq!(next_text(&mut go_reviewer).await, "reviewers");
    assert_eq!(next_text(&mut go_reviewer).await, "everyone");
    assert_eq!(next_text(&mut implementer).await, "everyone");
    assert_eq!(next_text(&mut bystander).await, "everyone");

    // Speaking as a role it did not declare.
    lead.send(publish("p4", json!({"text": "x", "from_role": "reviewer"})))
        .await;
    assert_error(&lead.recv().await, "invalid_field", Some("p4"));
    // A route that is not a list of names.
    lead.send(publish("p5", json!({"text": "x", "to_roles": "reviewer"})))
        .await;
    assert_error(&lead.recv().await, "invalid_field", Some("p5"));

    // Presence shows what each session declared.
    let info = lead
        .command("ci", "channel_info", json!({"address": "bip-43:general"}))
        .await;
    let info = reply_of(&info, "ci");
    let participants = info["participants"].as_array().unwrap();
    let rust = participants
        .iter()
        .find(|p| p["expertise"] == json!(["rust"]) && p["roles"] == json!(["reviewer"]))
        .unwrap_or_else(|| panic!("{info}"));
    assert_eq!(rust["reports_to"], "lead");
    srv.stop().await;
}

#[tokio::test]
async fn role_rooms_are_for_the_role_and_tokens_bound_what_may_be_declared() {
    let srv = start(config()).await;
    let mut reviewer = agent(&srv, &["reviewer"], &["rust"], None).await;
    reviewer.join("roles.reviewer:inbox").await;
    reviewer.join("expertise.rust:help").await;
    let e = reviewer
        .command("j1", "join", json!({"address": "roles.general:inbox"}))
        .await;
    assert_error(&e, "forbidden", Some("j1"));
    let e = reviewer
        .command("j2", "join", json!({"address": "expertise.go"}))
        .await;
    assert_error(&e, "forbidden", Some("j2"));
    // A glob that could reach role rooms is not a way around it.
    for (id, glob) in [("j3", "*:inbox"), ("j4", "roles.*:*"), ("j5", "rol*")] {
        let e = reviewer.command(id, "join", json!({"address": glob})).await;
        assert_error(&e, "forbidden", Some(id));
    }
    // Globs that cannot reach them are unaffected.
    reviewer.join("bip-*:review_*").await;

    // A token that may declare only `implementer`.
    let mut r = srv.raw().await;
    r.send(
        json!({"id": "h", "type": "HELLO", "payload": {"role": "client",
        "auth": LIMITED, "roles": ["reviewer"]}}),
    )
    .await;
    let e = r.recv().await;
    assert_error(&e, "forbidden", Some("h"));
    assert_eq!(e["payload"]["details"]["role_declared"], "reviewer");
    let mut ok = agent(&srv, &["implementer"], &[], Some(LIMITED)).await;
    ok.join("roles.implementer:inbox").await;

    // Bad declarations are refused with the field named.
    for (roles, field) in [
        (json!("reviewer"), "roles"),
        (json!(["Not A Name"]), "roles"),
    ] {
        let mut r = srv.raw().await;
        r.send(
            json!({"id": "h", "type": "HELLO", "payload": {"role": "client",
            "roles": roles}}),
        )
        .await;
        let e = r.recv().await;
        assert_error(&e, "invalid_field", Some("h"));
        assert_eq!(e["payload"]["details"]["field"], field);
    }
    srv.stop().await;
}
