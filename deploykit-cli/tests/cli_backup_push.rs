//! `deploykit backup push`: an environment's existing local backups move into
//! the object store its config now names (the rig's S3 server), keeping names
//! and metadata, on the rig's real PostgreSQL.

use std::path::Path;

#[path = "common/git_project.rs"]
mod git_project;
use git_project::free_port;

#[path = "common/s3_rig.rs"]
mod s3_rig;
use s3_rig::{rig, unique};

#[path = "common/s3_checkout.rs"]
mod s3_checkout;
use s3_checkout::{database, Checkout, Env};

#[test]
fn backup_push_moves_an_environments_local_backups_into_the_store() {
    let Some(rig) = rig() else { return };
    let store = rig.store_url(&unique("push"));
    let a = Checkout::new(&rig);
    let db = database(&rig, "push");
    let other_db = database(&rig, "push_other");
    // Before: both environments back up into one local directory.
    let local = |env: &str, db: &str| {
        format!(
            "[environments.{env}.database]\nurl = \"{db}\"\n\
             [environments.{env}.backup]\nkind = \"pg_dump\"\ndir = \"backups\"\n"
        )
    };
    std::fs::write(
        a.path("deploykit.toml"),
        local("staging", &db) + &local("production", &other_db),
    )
    .unwrap();
    let mut taken = Vec::new();
    for env in ["staging", "staging", "production"] {
        taken.push(a.ok_json(&["backup", "create", "-e", env])["artifact"]["path"].clone());
    }
    let names: Vec<String> = a
        .listed("staging")
        .iter()
        .map(|p| {
            Path::new(p)
                .file_name()
                .unwrap()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    assert_eq!(names.len(), 2);

    // After: staging's backups go to the object store.
    a.configure(
        &[Env {
            name: "staging",
            db: db.clone(),
            port: free_port(),
        }],
        &store,
        &rig.endpoint,
        7,
        false,
    );
    assert!(a.listed("staging").is_empty());
    let pushed = a.ok_json(&["backup", "push", "-e", "staging", "--from", "backups"]);
    assert_eq!(pushed["pushed"].as_array().unwrap().len(), 2, "{pushed}");
    assert_eq!(
        pushed["other_environments"], 1,
        "production's stays: {pushed}"
    );
    let listed = a.listed("staging");
    let listed_names: Vec<String> = listed
        .iter()
        .map(|p| {
            Path::new(p)
                .file_name()
                .unwrap()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    assert_eq!(listed_names, names, "same names, same order");
    a.ok_json(&["backup", "verify", "-e", "staging", &listed[0]]);
    // Again: nothing new to copy.
    let again = a.ok_json(&["backup", "push", "-e", "staging", "--from", "backups"]);
    assert!(again["pushed"].as_array().unwrap().is_empty(), "{again}");
    assert_eq!(again["already_there"], 2, "{again}");
}
